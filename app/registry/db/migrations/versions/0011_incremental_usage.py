"""reference counts kept incrementally

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 09:00:00

The usage graph was rewritten for a whole image at every tag change (a walk of
every tag). It is now kept by counters changed only where liveness changes
(app.registry.usage):

* ``manifests.holders``: tags on the manifest, live parent indexes, a live subject;
* ``blob_usage.refs``: live manifests of the image referencing the blob;
* ``images.tag_count``: the image's tags (listings show it with every page).

``ix_tags_manifest`` gains the tag name, so a manifest's first tags in name order
(a listing's "other tags") are an index range.

Both are filled here from a full walk of every image's tags, and ``blob_usage`` and
``blobs.image_refs`` are rebuilt from the same walk, so an upgraded registry starts
from exact figures whatever state its derived rows were in.
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Every live manifest of every image: reached from a tag through index -> child and
# subject -> referrer edges (referrers share their subject's image).
LIVE = """
    WITH RECURSIVE edges(parent, child) AS (
        SELECT parent_id, child_id FROM manifest_children
        UNION ALL
        SELECT sub.id, r.id
        FROM manifests r JOIN manifests sub
          ON sub.image_id = r.image_id AND sub.digest = r.subject_digest
        WHERE r.subject_digest IS NOT NULL AND sub.id != r.id
    ),
    live(id) AS (
        SELECT manifest_id FROM tags
        UNION
        SELECT e.child FROM edges e JOIN live ON e.parent = live.id
    )
    SELECT id FROM live
"""


def upgrade() -> None:
    # Plain ALTER TABLE on both dialects: a batch copy of ``manifests`` would trip
    # SQLite over the foreign keys that point at it.
    op.add_column(
        "manifests", sa.Column("holders", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("blob_usage", sa.Column("refs", sa.Integer(), nullable=False, server_default="0"))
    op.add_column(
        "images", sa.Column("tag_count", sa.Integer(), nullable=False, server_default="0")
    )
    op.execute(
        "UPDATE images SET tag_count = (SELECT count(*) FROM tags WHERE tags.image_id = images.id)"
    )
    op.drop_index("ix_tags_manifest", table_name="tags")
    op.create_index("ix_tags_manifest", "tags", ["manifest_id", "name"])
    conn = op.get_bind()
    live = set(conn.execute(sa.text(LIVE)).scalars())

    holders: dict[int, int] = defaultdict(int)
    for manifest_id, count in conn.execute(
        sa.text("SELECT manifest_id, count(*) FROM tags GROUP BY manifest_id")
    ):
        holders[manifest_id] += int(count)
    for parent, child in conn.execute(sa.text("SELECT parent_id, child_id FROM manifest_children")):
        if parent in live:
            holders[child] += 1
    for subject, referrer in conn.execute(
        sa.text(
            "SELECT sub.id, r.id FROM manifests r JOIN manifests sub "
            "ON sub.image_id = r.image_id AND sub.digest = r.subject_digest "
            "WHERE r.subject_digest IS NOT NULL AND sub.id != r.id"
        )
    ):
        if subject in live:
            holders[referrer] += 1
    if holders:
        conn.execute(
            sa.text("UPDATE manifests SET holders = :n WHERE id = :id"),
            [{"id": mid, "n": n} for mid, n in sorted(holders.items())],
        )

    # (image, blob) -> live manifests of the image referencing the blob.
    blobs_of: dict[int, set[int]] = defaultdict(set)
    image_of: dict[int, int] = {}
    for mid, image_id, config in conn.execute(
        sa.text("SELECT id, image_id, config_blob_id FROM manifests")
    ):
        if mid in live:
            image_of[mid] = image_id
            if config is not None:
                blobs_of[mid].add(config)
    for mid, blob_id in conn.execute(sa.text("SELECT manifest_id, blob_id FROM manifest_layers")):
        if mid in live:
            blobs_of[mid].add(blob_id)
    refs: dict[tuple[int, int], int] = defaultdict(int)
    for mid, held in blobs_of.items():
        for blob_id in held:
            refs[(blob_id, image_of[mid])] += 1
    conn.execute(sa.text("DELETE FROM blob_usage"))
    if refs:
        conn.execute(
            sa.text("INSERT INTO blob_usage (blob_id, image_id, refs) VALUES (:b, :i, :n)"),
            [{"b": b, "i": i, "n": n} for (b, i), n in sorted(refs.items())],
        )
    conn.execute(sa.text("UPDATE blobs SET image_refs = 0"))
    images_per_blob: dict[int, int] = defaultdict(int)
    for blob_id, _image in refs:
        images_per_blob[blob_id] += 1
    if images_per_blob:
        conn.execute(
            sa.text("UPDATE blobs SET image_refs = :n WHERE id = :id"),
            [{"id": b, "n": n} for b, n in sorted(images_per_blob.items())],
        )


def downgrade() -> None:
    op.drop_index("ix_tags_manifest", table_name="tags")
    op.create_index("ix_tags_manifest", "tags", ["manifest_id"])
    op.drop_column("images", "tag_count")
    op.drop_column("blob_usage", "refs")
    op.drop_column("manifests", "holders")
