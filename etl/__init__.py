"""The nightly job: the sources (GROW, WOW, geocoding), the six steps, their runner and shards, and the
`python -m etl` command line."""
