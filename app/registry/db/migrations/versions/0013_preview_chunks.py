"""cleanup previews: tags stored in chunks

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-10 09:00:00

A preview's tags move from one row per tag (``policy_preview_tags``) to chunks of up
to a page of consecutive tags of one image (``policy_preview_chunks``), compressed:
storing 100,000 rows cost a preview of one image more than planning it. Previews are
a day's working state, not records: those made before this revision are dropped
(runs keep their own figures; a run asked of a dropped preview is refused as
"no preview", and a new preview is a click away).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TagName = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def upgrade() -> None:
    op.execute("DELETE FROM policy_previews")
    op.drop_index("ix_policy_preview_tags_remove", table_name="policy_preview_tags")
    op.drop_table("policy_preview_tags")
    op.create_table(
        "policy_preview_chunks",
        sa.Column("preview_id", Id, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("image_id", Id, nullable=False),
        sa.Column("repository_id", Id, nullable=False),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("tag_count", sa.Integer(), nullable=False),
        sa.Column("remove_count", sa.Integer(), nullable=False),
        sa.Column("rows", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["preview_id"],
            ["policy_previews.id"],
            name="fk_policy_preview_chunks_preview_id_policy_previews",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("preview_id", "position", name="pk_policy_preview_chunks"),
    )


def downgrade() -> None:
    op.execute("DELETE FROM policy_previews")
    op.drop_table("policy_preview_chunks")
    op.create_table(
        "policy_preview_tags",
        sa.Column("preview_id", Id, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("image_id", Id, nullable=False),
        sa.Column("repository_id", Id, nullable=False),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("tag", TagName, nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("remove", sa.Boolean(), nullable=False),
        sa.Column("rule", sa.String(300), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("pushed_at", sa.BigInteger(), nullable=False),
        sa.Column("last_pulled", sa.BigInteger(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["preview_id"],
            ["policy_previews.id"],
            name="fk_policy_preview_tags_preview_id_policy_previews",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("preview_id", "position", name="pk_policy_preview_tags"),
    )
    op.create_index(
        "ix_policy_preview_tags_remove",
        "policy_preview_tags",
        ["preview_id", "remove", "position"],
    )
