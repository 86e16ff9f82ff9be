"""The derived reference graph: which blobs each image reaches from its tags.

``blob_usage`` holds (blob, image) pairs where the blob is reachable from a tag of
the image — through an index's children and through referrers whose subject is
reachable — and ``blobs.image_refs`` counts the images per blob. Storage figures
(referenced, shared, pending, per-repository exclusive bytes) are then simple sums.

Both are rewritten for an image in the same transaction as any change to its tags
or manifests, so they are never stale; ``fsck`` recomputes and compares them.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, insert, select, text, update

from app.registry.db import schema as s

# Manifests reachable from the tags of one image. Edges are index -> child and
# subject -> referrer (referrers live in the subject's image). One recursive
# reference only, which PostgreSQL requires.
_REACHABLE_BLOBS = text(
    """
    WITH RECURSIVE edges(parent, child) AS (
        SELECT mc.parent_id, mc.child_id
        FROM manifest_children mc JOIN manifests p ON p.id = mc.parent_id
        WHERE p.image_id = :image_id
        UNION ALL
        SELECT sub.id, r.id
        FROM manifests r JOIN manifests sub
          ON sub.image_id = r.image_id AND sub.digest = r.subject_digest
        WHERE r.image_id = :image_id AND r.subject_digest IS NOT NULL
    ),
    live(id) AS (
        SELECT manifest_id FROM tags WHERE image_id = :image_id
        UNION
        SELECT e.child FROM edges e JOIN live ON e.parent = live.id
    )
    SELECT m.config_blob_id AS blob_id FROM manifests m JOIN live ON live.id = m.id
    WHERE m.config_blob_id IS NOT NULL
    UNION
    SELECT ml.blob_id FROM manifest_layers ml JOIN live ON live.id = ml.manifest_id
    """
)


def reachable_blob_ids(conn: Connection, image_id: int) -> set[int]:
    return set(conn.execute(_REACHABLE_BLOBS, {"image_id": image_id}).scalars())


def refresh_image(conn: Connection, image_id: int) -> tuple[set[int], set[int]]:
    """Rewrite the image's usage rows; returns (blobs added, blobs dropped)."""
    want = reachable_blob_ids(conn, image_id)
    have = set(
        conn.execute(
            select(s.blob_usage.c.blob_id).where(s.blob_usage.c.image_id == image_id)
        ).scalars()
    )
    added = want - have
    dropped = have - want
    if added:
        conn.execute(
            insert(s.blob_usage),
            [{"blob_id": b, "image_id": image_id} for b in sorted(added)],
        )
        conn.execute(
            update(s.blobs)
            .where(s.blobs.c.id == bindparam("bid"))
            .values(image_refs=s.blobs.c.image_refs + 1),
            [{"bid": b} for b in sorted(added)],
        )
    if dropped:
        conn.execute(
            delete(s.blob_usage).where(
                s.blob_usage.c.image_id == image_id, s.blob_usage.c.blob_id.in_(sorted(dropped))
            )
        )
        conn.execute(
            update(s.blobs)
            .where(s.blobs.c.id == bindparam("bid"))
            .values(image_refs=s.blobs.c.image_refs - 1),
            [{"bid": b} for b in sorted(dropped)],
        )
    return added, dropped


def drop_image(conn: Connection, image_id: int) -> set[int]:
    """Remove all usage of an image that is going away; returns the blobs it reached."""
    have = set(
        conn.execute(
            select(s.blob_usage.c.blob_id).where(s.blob_usage.c.image_id == image_id)
        ).scalars()
    )
    if have:
        conn.execute(delete(s.blob_usage).where(s.blob_usage.c.image_id == image_id))
        conn.execute(
            update(s.blobs)
            .where(s.blobs.c.id == bindparam("bid"))
            .values(image_refs=s.blobs.c.image_refs - 1),
            [{"bid": b} for b in sorted(have)],
        )
    return have
