"""Baseline: the schema as core/schema.py first defined it.

A new database is built from core/schema.py directly and stamped with the newest revision, so this
revision has nothing to do. Every later change to core/schema.py comes with a revision after this one
('python -m etl new-migration "what changed"'), which upgrades databases that hold data.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
