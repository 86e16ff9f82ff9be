"""recently deleted: the trash

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09 09:00:00

Deletes leave a restorable entry for a retention period (app.registry.trash):

* ``trash_entries``: one row per deleted tag, per untagged manifest deleted by
  digest, per deleted image;
* ``images.trashed_at``: a deleted image keeps its row (and id) while in the trash, so
  a name is unique among live images only (``uq_images_live_name``, partial);
* ``manifests.trashed_at``: a manifest deleted by digest stays, hidden, while held;
* the trash's own reference counters beside the tags' (app.registry.usage):
  ``manifests.trash_holders``, ``trash_usage`` and ``blobs.trash_refs``, all zero
  here since nothing is in the trash yet; the storage figures' index covers
  ``trash_refs`` too, and samples record the bytes in the trash.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TagName = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")
LIVE = sa.text("trashed_at IS NULL")


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("images", sa.Column("trashed_at", sa.BigInteger(), nullable=True))
    if bind.dialect.name == "sqlite":
        # SQLite drops a table constraint only by rebuilding the table (foreign keys
        # are off for the migration; see env.py).
        with op.batch_alter_table(
            "images", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            batch.drop_constraint("uq_images_repository_id", type_="unique")
    else:
        op.drop_constraint("uq_images_repository_id", "images", type_="unique")
    op.create_index(
        "uq_images_live_name",
        "images",
        ["repository_id", "name"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    # Plain ALTER TABLE: see 0011 on rebuilding manifests.
    op.add_column(
        "manifests",
        sa.Column("trash_holders", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("manifests", sa.Column("trashed_at", sa.BigInteger(), nullable=True))
    op.add_column(
        "blobs", sa.Column("trash_refs", sa.Integer(), nullable=False, server_default="0")
    )
    op.drop_index("ix_blobs_workspace_refs", table_name="blobs")
    op.create_index(
        "ix_blobs_workspace_refs", "blobs", ["workspace_id", "image_refs", "trash_refs", "size"]
    )
    op.add_column(
        "storage_samples",
        sa.Column("in_trash", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "trash_usage",
        sa.Column("blob_id", Id, nullable=False),
        sa.Column("image_id", Id, nullable=False),
        sa.Column("refs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["blob_id"],
            ["blobs.id"],
            name=op.f("fk_trash_usage_blob_id_blobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_trash_usage_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("blob_id", "image_id", name=op.f("pk_trash_usage")),
    )
    op.create_index("ix_trash_usage_image", "trash_usage", ["image_id"])
    op.create_table(
        "trash_entries",
        sa.Column("id", Id, sa.Identity(), nullable=False),
        sa.Column("workspace_id", Id, nullable=False),
        sa.Column("repository_id", Id, nullable=False),
        sa.Column("image_id", Id, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("tag", TagName, nullable=True),
        sa.Column("manifest_id", Id, nullable=True),
        sa.Column("digest", sa.String(200), nullable=True),
        sa.Column("replaced_by", sa.String(200), nullable=True),
        sa.Column("pushed_at", sa.BigInteger(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("tag_count", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("deleted_by", sa.String(64), nullable=True),
        sa.Column("deleted_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_trash_entries_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_trash_entries_image_id_images"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["manifest_id"],
            ["manifests.id"],
            name=op.f("fk_trash_entries_manifest_id_manifests"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trash_entries")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_trash_entries_workspace", "trash_entries", ["workspace_id", "deleted_at", "id"]
    )
    op.create_index(
        "ix_trash_entries_repository", "trash_entries", ["repository_id", "deleted_at", "id"]
    )
    op.create_index("ix_trash_entries_image", "trash_entries", ["image_id", "tag", "id"])
    op.create_index("ix_trash_entries_manifest", "trash_entries", ["manifest_id"])
    op.create_index("ix_trash_entries_expires", "trash_entries", ["expires_at"])


def downgrade() -> None:
    bind = op.get_bind()
    held = bind.execute(sa.text("SELECT count(*) FROM trash_entries")).scalar_one()
    trashed = bind.execute(
        sa.text("SELECT count(*) FROM images WHERE trashed_at IS NOT NULL")
    ).scalar_one()
    if held or trashed:
        # A trashed image may share its name with a live one, which the old unique
        # constraint cannot hold: the trash must be empty (berth-registry trash empty).
        raise RuntimeError("empty the trash before downgrading below revision 0012")
    op.drop_index("ix_trash_entries_expires", table_name="trash_entries")
    op.drop_index("ix_trash_entries_manifest", table_name="trash_entries")
    op.drop_index("ix_trash_entries_image", table_name="trash_entries")
    op.drop_index("ix_trash_entries_repository", table_name="trash_entries")
    op.drop_index("ix_trash_entries_workspace", table_name="trash_entries")
    op.drop_table("trash_entries")
    op.drop_index("ix_trash_usage_image", table_name="trash_usage")
    op.drop_table("trash_usage")
    op.drop_index("uq_images_live_name", table_name="images")
    op.drop_index("ix_blobs_workspace_refs", table_name="blobs")
    op.create_index("ix_blobs_workspace_refs", "blobs", ["workspace_id", "image_refs", "size"])
    with op.batch_alter_table(
        "images", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.create_unique_constraint("uq_images_repository_id", ["repository_id", "name"])
        batch.drop_column("trashed_at")
    for table, column in (
        ("storage_samples", "in_trash"),
        ("blobs", "trash_refs"),
        ("manifests", "trash_holders"),
        ("manifests", "trashed_at"),
    ):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
