"""Mail: an account's address and whether it wants alerts, and mail_ledger, what the nightly alerts told
whom (issue 33).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from core.schema import SensorId, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("email", sa.String(254), comment="where the account's alerts go; none: no mail")
        )
        batch.add_column(
            sa.Column(
                "alerts",
                sa.Boolean(),
                nullable=False,
                server_default=sa.true(),
                comment="mail when a sensor turns bad",
            )
        )
    op.create_table(
        "mail_ledger",
        sa.Column("mail_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("sensor_id", SensorId, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, comment="faulty or silent"),
        sa.Column(
            "since",
            UTCDateTime(),
            nullable=False,
            comment="the episode: the last anomaly, or the latest reading",
        ),
        sa.Column("reason", sa.Text()),
        sa.Column("queued_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime()),
        sa.Column("outcome", sa.String(8), comment="sent, or stale (well again before it went)"),
        sa.Column("reminded_at", UTCDateTime(), comment="when a week still bad was told"),
        sa.Column("recovered_at", UTCDateTime(), comment="when being well again was told"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), comment="the mail server's last refusal, in one line"),
        sa.UniqueConstraint("user_id", "sensor_id", "status", "since"),
    )


def downgrade() -> None:
    op.drop_table("mail_ledger")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("alerts")
        batch.drop_column("email")
