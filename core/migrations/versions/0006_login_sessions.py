"""login_sessions: one row per login, its cookie's random token stored as a SHA-256, so a login ends when
revoked (logout, a password change, a disable, "log out everywhere") or past its lifetime (issue 32).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from core.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_sessions",
        sa.Column(
            "token_hash", sa.String(64), primary_key=True, comment="SHA-256 of the cookie's token, in hex"
        ),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.user_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column(
            "remember",
            sa.Boolean(),
            nullable=False,
            comment='"stay logged in": lives REMEMBER_DAYS, not hours',
        ),
        sa.Column("revoked_at", UTCDateTime(), comment="when it was ended; it answers nothing after"),
    )


def downgrade() -> None:
    op.drop_table("login_sessions")
