"""tag listings as index ranges

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 17:55:00

Every order of a tag listing becomes a range of an index instead of a sort of the
image's tags per page:

* tags/list's case-insensitive order: an index on (image_id, lower(name), name);
* the management API's size and creation-date orders: the tag row keeps copies of
  its manifest's total_size and created (manifests never change), filled here from
  the manifests, and indexes on (image_id, <copy>, id).

On PostgreSQL tag names become byte-ordered (collation "C") so both dialects order
and page alike whatever the database's default collation.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "tags",
            "name",
            type_=sa.String(length=128, collation="C"),
            existing_type=sa.String(length=128),
            existing_nullable=False,
        )
    op.add_column("tags", sa.Column("manifest_size", sa.BigInteger(), nullable=True))
    op.add_column("tags", sa.Column("manifest_created", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE tags SET "
        "manifest_size = (SELECT total_size FROM manifests WHERE manifests.id = tags.manifest_id), "
        "manifest_created = COALESCE("
        "(SELECT created FROM manifests WHERE manifests.id = tags.manifest_id), '')"
    )
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.alter_column("manifest_size", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column(
            "manifest_created", existing_type=sa.String(length=64), nullable=False
        )
        batch_op.create_index("ix_tags_image_size", ["image_id", "manifest_size", "id"])
        batch_op.create_index("ix_tags_image_created", ["image_id", "manifest_created", "id"])
    op.create_index(
        "ix_tags_image_lower_name", "tags", ["image_id", sa.text("lower(name)"), "name"]
    )


def downgrade() -> None:
    op.drop_index("ix_tags_image_lower_name", table_name="tags")
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.drop_index("ix_tags_image_created")
        batch_op.drop_index("ix_tags_image_size")
        batch_op.drop_column("manifest_created")
        batch_op.drop_column("manifest_size")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "tags",
            "name",
            type_=sa.String(length=128),
            existing_type=sa.String(length=128, collation="C"),
            existing_nullable=False,
        )
