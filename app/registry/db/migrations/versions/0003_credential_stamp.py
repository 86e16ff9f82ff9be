"""a credential stamp per user

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 01:00:00

``users.credential_stamp``: replaced on every password change (and gone with the
user), checked by every node against what a remembered login or a bearer token was
made under, so a changed password or a removed user stops working at the next
request everywhere. Existing users start with the empty stamp.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("credential_stamp", sa.String(length=32), nullable=False, server_default=""),
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("credential_stamp")
