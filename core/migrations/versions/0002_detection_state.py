"""Add detection_state: each sensor's detection watermark, so detect_anomalies checks only new days.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from core.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detection_state",
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column(
            "analysed_until", UTCDateTime(), nullable=False, comment="the latest reading already checked"
        ),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("sensor_id", name=op.f("pk_detection_state")),
    )


def downgrade() -> None:
    op.drop_table("detection_state")
