"""Readings stored lean on PostgreSQL (issue 34): monthly partitions keyed by a small integer, behind a
`readings` view (core.reading_store). The old table is kept as `readings_legacy`, shown by the view, until
`etl init-db` has moved it over a batch of sensors per transaction (core.reading_store.move_legacy), so
the web apps answer throughout. SQLite keeps its one table: nothing changes there.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from alembic import op

from core import reading_store

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        reading_store.adopt_legacy(connection)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        raise NotImplementedError("the readings store is not moved back: restore a backup taken before 0011")
