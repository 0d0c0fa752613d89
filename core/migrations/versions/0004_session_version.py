"""users.session_version: bumped by a password change or a disable, it ends every session and remember-me
cookie of the account (they carry the version they were issued under).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column(
                "session_version",
                sa.Integer(),
                nullable=False,
                server_default="0",
                comment="bumped when the password changes or the account is disabled: older sessions end",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_version")
