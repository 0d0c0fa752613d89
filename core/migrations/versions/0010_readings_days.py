"""readings_days: when each day's readings of each source last changed, for the changes feed and the
archive (issue 34), filled from the readings already stored, as changed now; and when each anomaly last
changed (anomalies.updated_at).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from core.schema import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Each sensor id's source, by its prefix (core.vocabulary.SOURCE_PREFIXES as it stands at this revision).
SOURCE = (
    "CASE WHEN sensor_id LIKE 'osem:%' THEN 'opensensemap' WHEN sensor_id LIKE 'file:%' THEN 'files' "
    "ELSE 'grow' END"
)


def upgrade() -> None:
    with op.batch_alter_table("anomalies") as batch:
        batch.add_column(sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=sa.func.now()))
    op.create_table(
        "readings_days",
        sa.Column("day", UTCDateTime(), primary_key=True, comment="the UTC day, as its midnight"),
        sa.Column("source", sa.String(16), primary_key=True, comment="grow, opensensemap or files"),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
    )
    op.create_index(op.f("ix_readings_days_changed_at"), "readings_days", ["changed_at"])
    sqlite = op.get_bind().dialect.name == "sqlite"
    day = "date(ts) || ' 00:00:00.000000'" if sqlite else "date_trunc('day', ts)"
    now = "strftime('%Y-%m-%d %H:%M:%S.000000', 'now')" if sqlite else "now()"
    op.execute(
        f"INSERT INTO readings_days (day, source, changed_at) "
        f"SELECT DISTINCT {day}, {SOURCE}, {now} FROM readings"
    )


def downgrade() -> None:
    with op.batch_alter_table("anomalies") as batch:
        batch.drop_column("updated_at")
    op.drop_index(op.f("ix_readings_days_changed_at"), table_name="readings_days")
    op.drop_table("readings_days")
