"""What the nightly run needs against a hostile upstream: fetch_state (how far each source answered),
fetch_gaps (spans given up), quarantine (records not taken as they came), etl_runs.counts,
detection_state.recheck_from (late readings to check again), and the `silent` health status.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from core.schema import QUARANTINE_ACTIONS, JSONDocument, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATUSES_BEFORE = ("healthy", "faulty", "recovered")
STATUSES_AFTER = ("healthy", "faulty", "recovered", "silent")


def upgrade() -> None:
    op.create_table(
        "fetch_state",
        sa.Column("source", sa.String(8), nullable=False, comment="grow or wow"),
        sa.Column("entity_id", sa.String(64), nullable=False, comment="sensor_id or site_id"),
        sa.Column(
            "fetched_through", UTCDateTime(), nullable=False, comment="the source answered fully up to here"
        ),
        sa.Column(
            "held_since", UTCDateTime(), comment="when an incomplete answer first held it back; null: none"
        ),
        sa.Column("held_reason", sa.Text(), comment="what was missing from the latest incomplete answer"),
        sa.Column(
            "held_runs",
            sa.Integer(),
            nullable=False,
            server_default="0",
            comment="runs it has been held back",
        ),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("source", "entity_id", name=op.f("pk_fetch_state")),
    )
    op.create_table(
        "fetch_gaps",
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("entity_id", sa.String(64), nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=False),
        sa.Column("held_since", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("given_up_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "entity_id", "start_at", name=op.f("pk_fetch_gaps")),
    )
    op.create_table(
        "quarantine",
        sa.Column("quarantine_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True),
        sa.Column(
            "source", sa.String(32), nullable=False, comment="grow sensors, grow readings, wow observations"
        ),
        sa.Column("fingerprint", sa.String(64), nullable=False, comment="sha256 of the record"),
        sa.Column(
            "entity_id",
            sa.String(64),
            comment="sensor or site, cut and cleaned, when the record names one",
        ),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(f"action IN {QUARANTINE_ACTIONS!r}", name=op.f("ck_quarantine_action")),
        sa.PrimaryKeyConstraint("quarantine_id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint("source", "fingerprint", name=op.f("uq_quarantine_source_fingerprint")),
    )
    op.create_index(op.f("ix_quarantine_last_seen_at"), "quarantine", ["last_seen_at"])
    op.add_column(
        "etl_runs",
        sa.Column("counts", JSONDocument, comment="what went wrong upstream: gaps, quarantined records, ..."),
    )
    op.add_column(
        "detection_state",
        sa.Column(
            "recheck_from",
            UTCDateTime(),
            comment="readings this old or newer arrived late, after their days were checked: check again",
        ),
    )
    _health_statuses(STATUSES_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM sensor_health WHERE status = 'silent'")  # the next analysis decides them again
    _health_statuses(STATUSES_BEFORE)
    with op.batch_alter_table("detection_state") as batch:
        batch.drop_column("recheck_from")
    with op.batch_alter_table("etl_runs") as batch:
        batch.drop_column("counts")
    op.drop_table("quarantine")
    op.drop_table("fetch_gaps")
    op.drop_table("fetch_state")


def _health_statuses(statuses: tuple[str, ...]) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table with the new one.
    with op.batch_alter_table("sensor_health", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_sensor_health_status"), type_="check")
        batch.create_check_constraint(op.f("ck_sensor_health_status"), f"status IN {statuses!r}")
