"""Reviewing one queued manifest or blob, inside the caller's write transaction.

* A manifest with no tag, no parent index and no live subject is deleted; its
  config and layers, its children (an index) and its referrers are queued for
  review at once, under the event that started the chain.
* A blob that no manifest of the workspace references is deleted; the caller
  removes the stored object (keyed by the row's generation) only after the commit.
* An item touched within the upload grace is kept and re-queued for when the
  grace ends; an item still referenced is kept and leaves the queue.

Lock order (DESIGN.md, race safety rule 5): every writer locks content rows (blobs,
then manifests, then tags) before queue rows, so a review locks the item row first
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL: an item a push holds, or another node is
reviewing, is left for a later pass rather than waited for) and its queue row
second. On SQLite ``BEGIN IMMEDIATE`` serializes writers and the locks are implicit.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, delete, exists, or_, select, update

from app.registry import reviews
from app.registry.db import schema as s


class Outcome(enum.Enum):
    SKIPPED = "skipped"  # not queued, not due, or locked by someone else: not reviewed
    KEPT = "kept"  # still referenced: the queue row goes
    DEFERRED = "deferred"  # touched within the grace: re-queued for when it ends
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Review:
    outcome: Outcome
    event: str | None = None
    image_id: int | None = None  # a deleted manifest's image
    freed: tuple[int, str, str, int] | None = None  # (workspace, digest, generation, size)
    linked_images: tuple[int, ...] = ()  # images a deleted blob was linked to


_SKIPPED = Review(Outcome.SKIPPED)


# queue rows ------------------------------------------------------------------


def _queued(
    conn: Connection, table: Table, key: str, item_id: int, now: int, ignore_delay: bool
) -> str | None:
    """Lock the item's queue row; its event if it is (still) queued and due."""
    q = select(table.c.event).where(table.c[key] == item_id)
    if not ignore_delay:
        q = q.where(table.c.review_after <= now)
    row = conn.execute(q.with_for_update()).first()
    return None if row is None else str(row.event)


def _dequeue(conn: Connection, table: Table, key: str, item_id: int) -> None:
    conn.execute(delete(table).where(table.c[key] == item_id))


def _requeue(conn: Connection, table: Table, key: str, item_id: int, after: int) -> None:
    """Review again at ``after`` (never earlier than already planned)."""
    conn.execute(
        update(table)
        .where(table.c[key] == item_id, table.c.review_after < after)
        .values(review_after=after)
    )


# manifests -------------------------------------------------------------------


def manifest_in_use(
    conn: Connection, manifest_id: int, image_id: int, subject_digest: str | None
) -> bool:
    """A tag, a parent index or a live subject keeps a manifest."""
    if conn.execute(select(exists().where(s.tags.c.manifest_id == manifest_id))).scalar():
        return True
    if conn.execute(select(exists().where(s.manifest_children.c.child_id == manifest_id))).scalar():
        return True
    if subject_digest is None:
        return False
    return bool(
        conn.execute(
            select(
                exists().where(
                    s.manifests.c.image_id == image_id, s.manifests.c.digest == subject_digest
                )
            )
        ).scalar()
    )


@dataclass(frozen=True, slots=True)
class Holdings:
    """What a manifest keeps alive, to be reviewed when it goes."""

    blobs: set[int]  # its config and layers
    children: list[int]  # an index's manifests
    referrers: list[int]  # manifests whose subject it is


def holdings(
    conn: Connection, manifest_id: int, image_id: int, digest: str, config_blob_id: int | None
) -> Holdings:
    blobs = set(
        conn.execute(
            select(s.manifest_layers.c.blob_id).where(
                s.manifest_layers.c.manifest_id == manifest_id
            )
        ).scalars()
    )
    if config_blob_id is not None:
        blobs.add(config_blob_id)
    children = list(
        conn.execute(
            select(s.manifest_children.c.child_id).where(
                s.manifest_children.c.parent_id == manifest_id
            )
        ).scalars()
    )
    referrers = list(
        conn.execute(
            select(s.manifests.c.id).where(
                s.manifests.c.image_id == image_id,
                s.manifests.c.subject_digest == digest,
                s.manifests.c.id != manifest_id,
            )
        ).scalars()
    )
    return Holdings(blobs, children, referrers)


def review_manifest(
    conn: Connection, manifest_id: int, now: int, grace_ms: int, *, ignore_delay: bool = False
) -> Review:
    """Review one queued manifest inside the caller's write transaction."""
    m = conn.execute(
        select(
            s.manifests.c.id,
            s.manifests.c.workspace_id,
            s.manifests.c.image_id,
            s.manifests.c.digest,
            s.manifests.c.subject_digest,
            s.manifests.c.config_blob_id,
            s.manifests.c.touched_at,
        )
        .where(s.manifests.c.id == manifest_id)
        .with_for_update(skip_locked=True)
    ).first()
    table = s.gc_manifest_reviews
    if m is None:
        # Gone (its queue row went with it by cascade) or locked by a writer.
        return _SKIPPED
    event = _queued(conn, table, "manifest_id", manifest_id, now, ignore_delay)
    if event is None:
        return _SKIPPED
    if manifest_in_use(conn, m.id, m.image_id, m.subject_digest):
        _dequeue(conn, table, "manifest_id", m.id)
        return Review(Outcome.KEPT, event)
    if m.touched_at > now - grace_ms:
        _requeue(conn, table, "manifest_id", m.id, m.touched_at + grace_ms)
        return Review(Outcome.DEFERRED, event)

    held = holdings(conn, m.id, m.image_id, m.digest, m.config_blob_id)
    conn.execute(delete(s.manifest_children).where(s.manifest_children.c.parent_id == m.id))
    # Cascades to its layer rows and its queue row.
    conn.execute(delete(s.manifests).where(s.manifests.c.id == m.id))
    # What it held is reviewed next, recorded under the event that started the chain.
    reviews.queue_blobs(conn, m.workspace_id, held.blobs, now, event)
    reviews.queue_manifests(conn, m.workspace_id, held.children + held.referrers, now, event)
    return Review(Outcome.DELETED, event, image_id=m.image_id)


# blobs -----------------------------------------------------------------------


def blob_in_use(conn: Connection, blob_id: int) -> bool:
    """Whether any manifest (of the blob's workspace, the only one that can see it)
    references the blob as a layer or a config."""
    return bool(
        conn.execute(
            select(
                or_(
                    exists().where(s.manifest_layers.c.blob_id == blob_id),
                    exists().where(s.manifests.c.config_blob_id == blob_id),
                )
            )
        ).scalar()
    )


def review_blob(
    conn: Connection, blob_id: int, now: int, grace_ms: int, *, ignore_delay: bool = False
) -> Review:
    """Review one queued blob inside the caller's write transaction. On DELETED the
    caller removes the stored object after committing."""
    b = conn.execute(
        select(
            s.blobs.c.id,
            s.blobs.c.workspace_id,
            s.blobs.c.digest,
            s.blobs.c.generation,
            s.blobs.c.size,
            s.blobs.c.touched_at,
        )
        .where(s.blobs.c.id == blob_id)
        .with_for_update(skip_locked=True)
    ).first()
    table = s.gc_blob_reviews
    if b is None:
        return _SKIPPED
    event = _queued(conn, table, "blob_id", blob_id, now, ignore_delay)
    if event is None:
        return _SKIPPED
    if blob_in_use(conn, b.id):
        _dequeue(conn, table, "blob_id", b.id)
        return Review(Outcome.KEPT, event)
    if b.touched_at > now - grace_ms:
        _requeue(conn, table, "blob_id", b.id, b.touched_at + grace_ms)
        return Review(Outcome.DEFERRED, event)
    linked = tuple(
        conn.execute(
            select(s.image_blobs.c.image_id).where(s.image_blobs.c.blob_id == b.id)
        ).scalars()
    )
    # Cascades to its image links, usage rows (none: nothing references it) and queue row.
    conn.execute(delete(s.blobs).where(s.blobs.c.id == b.id))
    return Review(
        Outcome.DELETED,
        event,
        freed=(b.workspace_id, b.digest, b.generation, int(b.size)),
        linked_images=linked,
    )


# images ----------------------------------------------------------------------


def _empty_image_filter(image_ids: Iterable[int] | None, workspace_id: int) -> Any:
    i = s.images.c
    conds = [
        i.workspace_id == workspace_id,
        ~exists().where(s.manifests.c.image_id == i.id),
        ~exists().where(s.image_blobs.c.image_id == i.id),
        ~exists().where(s.upload_sessions.c.image_id == i.id),
    ]
    if image_ids is not None:
        conds.append(i.id.in_(sorted(image_ids)))
    return conds


def remove_empty_images(
    conn: Connection, workspace_id: int, image_ids: Iterable[int] | None = None
) -> int:
    """Delete image rows left with no manifests, no blob links and no upload
    sessions (all of them in the workspace when ``image_ids`` is None)."""
    ids = list(
        conn.execute(
            select(s.images.c.id)
            .where(*_empty_image_filter(image_ids, workspace_id))
            .order_by(s.images.c.id)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not ids:
        return 0
    # Re-checked under the row locks (a push may have added a session meanwhile).
    still = list(
        conn.execute(select(s.images.c.id).where(*_empty_image_filter(ids, workspace_id))).scalars()
    )
    if still:
        conn.execute(delete(s.images).where(s.images.c.id.in_(still)))
    return len(still)
