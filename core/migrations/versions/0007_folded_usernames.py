"""Usernames trimmed and case-folded, as the front end now makes and looks them up (issue 32): "Ada " and
"ada" are one account. A name whose folded form another account already has is left as it was (the front
end still finds it by its exact name), never merged.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    users = sa.table("users", sa.column("user_id", sa.Integer), sa.column("username", sa.String))
    rows = connection.execute(sa.select(users.c.user_id, users.c.username)).all()
    taken = {name for _, name in rows}
    for user_id, name in rows:
        folded = name.strip().casefold()
        if folded != name and folded not in taken:
            connection.execute(sa.update(users).where(users.c.user_id == user_id).values(username=folded))
            taken.discard(name)
            taken.add(folded)


def downgrade() -> None:
    pass  # the names as typed are not kept: folded names serve the older code as well
