"""who opened an upload session

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 05:00:00

``upload_sessions.user_id``: open sessions are limited per user and per workspace
(each counted through an index); sessions opened before this have no owner and count
for their workspace only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# As app.registry.db.schema.Id: 64-bit, plain INTEGER on SQLite.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", Id, nullable=True))
        batch_op.create_foreign_key(
            "fk_upload_sessions_user_id_users", "users", ["user_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_upload_sessions_user", ["user_id"])
        batch_op.create_index("ix_upload_sessions_workspace", ["workspace_id"])


def downgrade() -> None:
    with op.batch_alter_table("upload_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_upload_sessions_workspace")
        batch_op.drop_index("ix_upload_sessions_user")
        batch_op.drop_constraint("fk_upload_sessions_user_id_users", type_="foreignkey")
        batch_op.drop_column("user_id")
