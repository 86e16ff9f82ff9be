"""Reviewing a batch of queued manifests or blobs of one workspace, inside the
caller's write transaction.

* A manifest with no tag, no parent index and no live subject is deleted; its
  config and layers, its children (an index) and its referrers are queued for
  review at once, under the event that started the chain.
* A blob that no manifest of the workspace references is deleted; the caller
  removes the stored object (keyed by the row's generation) only after the commit.
* An item touched within the upload grace is kept and re-queued for when the
  grace ends; an item still referenced is kept and leaves the queue.

A batch is decided with a handful of set-based statements, whatever its size: the
cost of a review does not grow with the registry, only with the batch.

Lock order (DESIGN.md, race safety rule 5): every writer locks content rows (blobs,
then manifests, then tags) before queue rows, so a review locks the item rows first
and their queue rows second, each in id order, with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL: an item a push holds, or another node is reviewing, is left for a later
pass rather than waited for. On SQLite ``BEGIN IMMEDIATE`` serializes writers and
the locks are implicit.

Within a batch, kept items leave the queue *before* deleted ones queue what they
held: a child kept for its parent index (or a referrer for its subject) that goes
in the same batch is queued again, never dropped.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, delete, exists, or_, select, update

from app.registry.db import schema as s
from app.registry.gc import reviews


class Outcome(enum.Enum):
    KEPT = "kept"  # still referenced: the queue row goes
    DEFERRED = "deferred"  # touched within the grace: re-queued for when it ends
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Freed:
    """A deleted blob's stored object, removed once the deletion has committed."""

    workspace_id: int
    digest: str
    generation: str
    size: int


@dataclass(slots=True)
class Batch:
    """What reviewing a batch decided. Items not listed were not reviewed: no
    longer queued, not due, or locked by another transaction."""

    reviewed: list[tuple[int, str, Outcome]] = field(default_factory=list)  # id, event
    images: set[int] = field(default_factory=set)  # of deleted manifests, linked to blobs
    manifests_deleted: int = 0
    freed: list[Freed] = field(default_factory=list)  # deleted blobs


# queue rows ------------------------------------------------------------------


def _lock_queued(
    conn: Connection, table: Table, key: str, ids: Sequence[int], now: int, ignore_delay: bool
) -> dict[int, str]:
    """Lock the items' queue rows; the event of each that is (still) queued and due."""
    if not ids:
        return {}
    q = select(table.c[key], table.c.event).where(table.c[key].in_(ids))
    if not ignore_delay:
        q = q.where(table.c.review_after <= now)
    q = q.order_by(table.c[key]).with_for_update(skip_locked=True)
    return {row[0]: str(row[1]) for row in conn.execute(q)}


def _dequeue(conn: Connection, table: Table, key: str, ids: Iterable[int]) -> None:
    ids = sorted(ids)
    if ids:
        conn.execute(delete(table).where(table.c[key].in_(ids)))


def _requeue(conn: Connection, table: Table, key: str, after: dict[int, int]) -> None:
    """Review again at the given times (never earlier than already planned)."""
    if after:
        conn.execute(
            update(table)
            .where(table.c[key] == bindparam("item"), table.c.review_after < bindparam("after"))
            .values(review_after=bindparam("after")),
            [{"item": i, "after": t} for i, t in sorted(after.items())],
        )


def _triage(
    conn: Connection,
    items: Table,
    queue: Table,
    columns: Sequence[Any],
    ids: Sequence[int],
    in_use: Callable[[Connection, Sequence[int]], set[int]],
    now: int,
    grace_ms: int,
    ignore_delay: bool,
) -> tuple[Batch, list[Any], dict[int, str]]:
    """Lock the items and their queue rows; settle those still referenced (they leave
    the queue) and those touched within the grace (re-queued for when it ends).
    Returns the batch so far, the collectable rows, and each item's event."""
    key = queue.primary_key.columns.values()[0].name
    rows = conn.execute(
        select(*columns)
        .where(items.c.id.in_(sorted(ids)))
        .order_by(items.c.id)
        .with_for_update(skip_locked=True)
    ).all()
    events = _lock_queued(conn, queue, key, [r.id for r in rows], now, ignore_delay)
    rows = [r for r in rows if r.id in events]
    batch = Batch()
    if not rows:
        return batch, [], events
    used = in_use(conn, [r.id for r in rows])
    kept = [r.id for r in rows if r.id in used]
    rest = [r for r in rows if r.id not in used]
    deferred = {r.id: r.touched_at + grace_ms for r in rest if r.touched_at > now - grace_ms}
    _dequeue(conn, queue, key, kept)
    _requeue(conn, queue, key, deferred)
    batch.reviewed += [(i, events[i], Outcome.KEPT) for i in kept]
    batch.reviewed += [(i, events[i], Outcome.DEFERRED) for i in sorted(deferred)]
    return batch, [r for r in rest if r.id not in deferred], events


# manifests -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holdings:
    """What a manifest keeps alive, to be reviewed when it goes."""

    blobs: set[int]  # its config and layers
    children: list[int]  # an index's manifests
    referrers: list[int]  # manifests whose subject it is


def holdings_of(
    conn: Connection, manifests: Sequence[tuple[int, int | None]]
) -> dict[int, Holdings]:
    """Holdings of manifests given as (id, config blob id)."""
    ids = sorted(m for m, _config in manifests)
    blobs: dict[int, set[int]] = {m: ({c} if c is not None else set()) for m, c in manifests}
    children: dict[int, list[int]] = defaultdict(list)
    referrers: dict[int, list[int]] = defaultdict(list)
    ml, mc = s.manifest_layers.c, s.manifest_children.c
    for mid, blob_id in conn.execute(
        select(ml.manifest_id, ml.blob_id).where(ml.manifest_id.in_(ids))
    ):
        blobs[mid].add(blob_id)
    for parent, child in conn.execute(
        select(mc.parent_id, mc.child_id).where(mc.parent_id.in_(ids))
    ):
        children[parent].append(child)
    subject, referrer = s.manifests.alias("subject"), s.manifests.alias("referrer")
    for sid, rid in conn.execute(
        select(subject.c.id, referrer.c.id)
        .join(
            referrer,
            and_(
                referrer.c.image_id == subject.c.image_id,
                referrer.c.subject_digest == subject.c.digest,
                referrer.c.id != subject.c.id,
            ),
        )
        .where(subject.c.id.in_(ids))
    ):
        referrers[sid].append(rid)
    return {m: Holdings(blobs[m], sorted(children[m]), sorted(referrers[m])) for m in ids}


def holdings(conn: Connection, manifest_id: int, config_blob_id: int | None) -> Holdings:
    return holdings_of(conn, [(manifest_id, config_blob_id)])[manifest_id]


def manifests_in_use(conn: Connection, ids: Sequence[int]) -> set[int]:
    """Of ``ids``, those a tag, the trash, a parent index or a live subject keeps --
    or any stored subject: a referrer goes only once its subject has gone, like a
    child once its index has. One indexed probe per manifest, whatever the number of
    its tags or parents (a tag keeps a manifest live, so ``holders`` covers the tags;
    ``trash_holders`` covers trash entries and what they reach).

    A manifest deleted by digest into the trash (hidden) is kept by the trash alone
    once it is hidden -- and by a parent row, which the index's own collection
    removes first -- not by its subject: a referrer deleted by digest goes when its
    entry does, as it went at once before there was a trash."""
    m, mc, subject = s.manifests, s.manifest_children.c, s.manifests.alias("subject")
    return set(
        conn.execute(
            select(m.c.id).where(
                m.c.id.in_(ids),
                or_(
                    m.c.holders > 0,
                    m.c.trash_holders > 0,
                    exists().where(mc.child_id == m.c.id),
                    and_(
                        m.c.trashed_at.is_(None),
                        m.c.subject_digest.is_not(None),
                        exists().where(
                            subject.c.image_id == m.c.image_id,
                            subject.c.digest == m.c.subject_digest,
                        ),
                    ),
                ),
            )
        ).scalars()
    )


def review_manifests(
    conn: Connection,
    ids: Sequence[int],
    now: int,
    grace_ms: int,
    *,
    ignore_delay: bool = False,
) -> Batch:
    m = s.manifests.c
    batch, doomed, events = _triage(
        conn,
        s.manifests,
        s.gc_manifest_reviews,
        (m.id, m.workspace_id, m.image_id, m.config_blob_id, m.touched_at),
        ids,
        manifests_in_use,
        now,
        grace_ms,
        ignore_delay,
    )
    if not doomed:
        return batch
    held = holdings_of(conn, [(r.id, r.config_blob_id) for r in doomed])
    doomed_ids = sorted(r.id for r in doomed)
    conn.execute(delete(s.manifest_children).where(s.manifest_children.c.parent_id.in_(doomed_ids)))
    # Cascades to their layer rows and queue rows.
    conn.execute(delete(s.manifests).where(m.id.in_(doomed_ids)))
    # What they held is reviewed next, under the event that started the chain.
    blobs: dict[tuple[int, str], set[int]] = defaultdict(set)
    manifests: dict[tuple[int, str], set[int]] = defaultdict(set)
    for r in doomed:
        group = (r.workspace_id, events[r.id])
        blobs[group] |= held[r.id].blobs
        manifests[group] |= set(held[r.id].children) | set(held[r.id].referrers)
        batch.reviewed.append((r.id, events[r.id], Outcome.DELETED))
        batch.images.add(r.image_id)
    batch.manifests_deleted = len(doomed)
    for (ws, event), blob_ids in sorted(blobs.items()):
        reviews.queue_blobs(conn, ws, blob_ids, now, event)
    for (ws, event), manifest_ids in sorted(manifests.items()):
        reviews.queue_manifests(conn, ws, manifest_ids - set(doomed_ids), now, event)
    return batch


# blobs -----------------------------------------------------------------------


def blobs_in_use(conn: Connection, ids: Sequence[int]) -> set[int]:
    """Of ``ids``, the blobs some manifest (of their workspace, the only one that can
    see them) references as a layer or a config: an indexed probe per blob that
    stops at the first reference, however many manifests share the blob."""
    b, ml, m = s.blobs.c, s.manifest_layers.c, s.manifests.c
    return set(
        conn.execute(
            select(b.id).where(
                b.id.in_(ids),
                or_(
                    exists().where(ml.blob_id == b.id),
                    exists().where(m.config_blob_id == b.id),
                ),
            )
        ).scalars()
    )


def review_blobs(
    conn: Connection,
    ids: Sequence[int],
    now: int,
    grace_ms: int,
    *,
    ignore_delay: bool = False,
) -> Batch:
    b = s.blobs.c
    batch, doomed, events = _triage(
        conn,
        s.blobs,
        s.gc_blob_reviews,
        (b.id, b.workspace_id, b.digest, b.generation, b.size, b.touched_at),
        ids,
        blobs_in_use,
        now,
        grace_ms,
        ignore_delay,
    )
    if not doomed:
        return batch
    doomed_ids = sorted(r.id for r in doomed)
    batch.images |= set(
        conn.execute(
            select(s.image_blobs.c.image_id).where(s.image_blobs.c.blob_id.in_(doomed_ids))
        ).scalars()
    )
    # Cascades to their image links, usage rows (none: nothing references them) and
    # queue rows.
    conn.execute(delete(s.blobs).where(b.id.in_(doomed_ids)))
    for r in doomed:
        batch.reviewed.append((r.id, events[r.id], Outcome.DELETED))
        batch.freed.append(Freed(r.workspace_id, r.digest, r.generation, int(r.size)))
    return batch


# images ----------------------------------------------------------------------


def _empty_image_filter(image_ids: Iterable[int] | None, workspace_id: int) -> list[Any]:
    i = s.images.c
    conds = [
        i.workspace_id == workspace_id,
        ~exists().where(s.manifests.c.image_id == i.id),
        ~exists().where(s.image_blobs.c.image_id == i.id),
        ~exists().where(s.upload_sessions.c.image_id == i.id),
        # An image in the trash (or with entries) keeps its row until they go.
        ~exists().where(s.trash_entries.c.image_id == i.id),
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
