"""Owners answer: what they said of anomalies (anomaly_answers), the spans they paused a sensor
(sensor_pauses) and a `paused` health; accounts sign up before they claim an owner id, and choose when
their alerts come and in which language (issue 33).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from core.schema import SensorId, UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STATUSES_BEFORE = ("healthy", "faulty", "recovered", "silent")
STATUSES_AFTER = ("healthy", "faulty", "recovered", "silent", "paused")
ANSWERS = ("real_fault", "not_a_fault", "fixed")


def upgrade() -> None:
    with op.batch_alter_table("users", recreate="auto") as batch:
        # A self-service account exists before it claims its owner id.
        batch.drop_constraint(op.f("ck_users_owner_has_owner_id"), type_="check")
        batch.add_column(
            sa.Column(
                "alert_schedule",
                sa.String(8),
                nullable=False,
                server_default="nightly",
                comment="nightly: a mail the night a sensor turns bad; weekly: one mail a week at most",
            )
        )
        batch.add_column(
            sa.Column(
                "language", sa.String(8), comment="the language of its pages and mails; none: the browser's"
            )
        )
        batch.create_check_constraint(
            op.f("ck_users_alert_schedule"), "alert_schedule IN ('nightly', 'weekly')"
        )
    _health_statuses(STATUSES_AFTER)
    op.create_table(
        "anomaly_answers",
        sa.Column("answer_id", sa.Integer(), primary_key=True),
        sa.Column("sensor_id", SensorId, nullable=False),
        sa.Column("variable", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column(
            "start_at", UTCDateTime(), nullable=False, comment="the anomaly's start: with the rest, its key"
        ),
        sa.Column("answer", sa.String(16), nullable=False, comment="real_fault, not_a_fault or fixed"),
        sa.Column(
            "reason", sa.String(16), comment="why not a fault: watering, gardening, moved, winter, other"
        ),
        sa.Column("note", sa.Text()),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.user_id", ondelete="SET NULL")),
        sa.Column("answered_by", sa.String(64), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=False),
        sa.Column(
            "excuses_until",
            UTCDateTime(),
            nullable=False,
            comment="what the answer speaks for ends here: the anomaly's end when answered; a fix, its day",
        ),
        sa.CheckConstraint(f"answer IN {ANSWERS!r}", name=op.f("ck_anomaly_answers_answer")),
        sa.UniqueConstraint("sensor_id", "variable", "kind", "start_at"),
    )
    op.create_table(
        "sensor_pauses",
        sa.Column("pause_id", sa.Integer(), primary_key=True),
        sa.Column("sensor_id", SensorId, nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.user_id", ondelete="SET NULL")),
        sa.Column("paused_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("end_at > start_at", name=op.f("ck_sensor_pauses_span")),
    )
    op.create_index(op.f("ix_sensor_pauses_sensor_id"), "sensor_pauses", ["sensor_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sensor_pauses_sensor_id"), table_name="sensor_pauses")
    op.drop_table("sensor_pauses")
    op.drop_table("anomaly_answers")
    op.execute("DELETE FROM sensor_health WHERE status = 'paused'")  # the next analysis decides them again
    _health_statuses(STATUSES_BEFORE)
    op.execute("DELETE FROM users WHERE role = 'owner' AND owner_id IS NULL")  # unclaimed: not allowed before
    with op.batch_alter_table("users", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_users_alert_schedule"), type_="check")
        batch.drop_column("language")
        batch.drop_column("alert_schedule")
        batch.create_check_constraint(
            op.f("ck_users_owner_has_owner_id"), "role = 'admin' OR owner_id IS NOT NULL"
        )


def _health_statuses(statuses: tuple[str, ...]) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table with the new one.
    with op.batch_alter_table("sensor_health", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_sensor_health_status"), type_="check")
        batch.create_check_constraint(op.f("ck_sensor_health_status"), f"status IN {statuses!r}")
