"""sensors.address_2019: the address as 2019 wrote it (Google's address components' long names joined by
spaces), beside Google's formatted address, so that 2019's /grow_by_address finds a sensor by either.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sensors") as batch:
        batch.add_column(
            sa.Column(
                "address_2019",
                sa.String(512),
                comment=(
                    "the address as 2019 wrote it: Google's address components' long names joined by spaces"
                ),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sensors") as batch:
        batch.drop_column("address_2019")
