"""The core every part of GROW–WOW shares: settings, the database schema and access, the bulk upsert,
migrations, errors, logging, times and the domain vocabulary. It imports no other package of ours."""
