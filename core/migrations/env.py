"""Alembic environment: migrations run on the connection `core.db` hands over, on either engine."""

from alembic import context

from core.reading_store import alembic_filter
from core.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations through 'python -m etl init-db' (or 'python -m etl new-migration')")

# Batch mode lets ALTER-style migrations work on SQLite, which rebuilds the table instead.
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
    include_object=alembic_filter(connection.dialect.name),
)
with context.begin_transaction():
    context.run_migrations()
