"""failed sign-in back-off

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 03:00:00

``login_failures`` counts failed password checks per user name and per client
address, with the time until which each is blocked; ``login_addresses`` remembers
where each user signed in successfully (not locked out by others' failures). Both
live in the metadata store so every node applies the same limits.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# As app.registry.db.schema.Id: 64-bit, plain INTEGER on SQLite (the rowid).
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.BigInteger(), nullable=False),
        sa.Column("blocked_until", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_last", "login_failures", ["last_at"])
    op.create_table(
        "login_addresses",
        sa.Column("user_id", Id, nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("last_success_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_login_addresses_user_id_users",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "address", name="pk_login_addresses"),
    )
    op.create_index("ix_login_addresses_last", "login_addresses", ["last_success_at"])


def downgrade() -> None:
    op.drop_index("ix_login_addresses_last", table_name="login_addresses")
    op.drop_table("login_addresses")
    op.drop_index("ix_login_failures_last", table_name="login_failures")
    op.drop_table("login_failures")
