"""a version of each user's access

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 12:00:00

``users.access_version``: bumped in the transaction of every change to the user's
memberships and grants, so anything worked out from them and kept for a while (an
open event stream's visibility) notices on every node and works it out again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("access_version", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("access_version")
