"""GROW–WOW ETL: sources, nightly steps, and the settings and database every part shares."""
