"""The derived reference graph, kept incrementally: what each image reaches from its
tags, at the cost of what changed (DESIGN.md §2, cost rule).

A manifest of an image is *live* when a tag of the image reaches it, directly or
through edges: index -> child and subject -> referrer (referrers live in their
subject's image). Three counters say it without walking the graph:

* ``manifests.holders``: what holds the manifest live -- the tags on it, its live
  parent indexes, and its subject if that is live. Live means ``holders > 0``.
* ``blob_usage.refs``: per (image, blob), the live manifests of the image that
  reference the blob as config or layer (a row exists only while ``refs > 0``).
* ``blobs.image_refs``: per blob, the images that reach it (its ``blob_usage`` rows).

Storage figures (referenced, shared, pending, exclusive bytes) are sums over them.

A tag push, move or delete is a change of holders (:func:`hold`): each manifest
whose liveness flips passes +1/-1 to its children and referrers and to the refs of
its blobs, and so on until nothing flips, in the transaction of the change. Its
cost is the part of the graph whose liveness changed, never the size of the image.

This counting is exact because the graph has no cycles. Children are pushed before
their index and digests make index cycles impossible, but an edge to a referrer
points the other way: an index whose subject is one of its own descendants would
close a loop that keeps itself live, so such a manifest is refused at push time
(:func:`closes_cycle`).

The full recomputation (:func:`expected`) is the check: ``fsck`` compares it with the
counters, and rebuilds them from it with ``--repair``.

Holder kinds: tags are the one kind of root today. Another kind (the trash's held
tags, say) adds its own counters -- a manifest column, a ``blob_usage`` column and a
``blobs`` column -- and passes a :class:`Kind` naming them to :func:`hold`; the
propagation is the same, and each statement below is built per kind. Its figures
must stay apart from the tags' (held by the trash is not referenced: the storage
figures read ``blobs.image_refs``). Adding one also means: the GC keeps a manifest
while any kind holds it (``gc_review.manifests_in_use`` reads ``holders`` only), and
a ``blob_usage`` row lives while any kind's refs are above zero (``_EMPTIED`` and
:func:`drop_image` know the tags' only).

Concurrency (PostgreSQL): every write that changes an image's counters first locks
the image row (``content.lock_image``), so the counters of one image change one
transaction at a time -- a referrer and its subject, a tag and the manifest it
leaves, are never counted by two transactions at once. ``blobs.image_refs`` is
shared between images: its rows are updated last, in id order. On SQLite writers
are serial anyway.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import (
    BindParameter,
    Column,
    Connection,
    Executable,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from app.registry.db import schema as s


class AccountingError(RuntimeError):
    """A counter went below zero: the derived data is damaged (``fsck --repair``)."""


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of root that keeps manifests live, with the counters it keeps: per
    manifest, per (image, blob), per blob."""

    name: str
    holders: Column[int]  # on manifests
    refs: Column[int]  # on blob_usage
    images: Column[int]  # on blobs


TAGS = Kind("tags", s.manifests.c.holders, s.blob_usage.c.refs, s.blobs.c.image_refs)


@dataclass(frozen=True, slots=True)
class Edges:
    """A manifest's image, blobs (config and layers) and index children, when the
    caller has them in hand (a manifest it just wrote): not read back."""

    image_id: int
    blobs: frozenset[int]
    children: tuple[int, ...]


_m = s.manifests.c
_mc = s.manifest_children.c
_ml = s.manifest_layers.c
_u = s.blob_usage.c
_ids: BindParameter[list[int]] = bindparam("ids", expanding=True)


def _bump(kind: Kind) -> Executable:
    return (
        update(s.manifests)
        .where(_m.id.in_(_ids))
        .values({kind.holders: kind.holders + bindparam("delta")})
        .returning(_m.id, kind.holders)
    )


_BUMP = {TAGS.name: _bump(TAGS)}
_CHILDREN = select(_mc.parent_id, _mc.child_id).where(_mc.parent_id.in_(_ids))
_subject = s.manifests.alias("subject")
_referrer = s.manifests.alias("referrer")
_REFERRERS = (
    select(_subject.c.id, _referrer.c.id)
    .join(
        _referrer,
        (_referrer.c.image_id == _subject.c.image_id)
        & (_referrer.c.subject_digest == _subject.c.digest),
    )
    .where(_subject.c.id.in_(_ids), _referrer.c.id != _subject.c.id)
)
_CONFIGS = select(_m.id, _m.image_id, _m.config_blob_id).where(_m.id.in_(_ids))
_LAYERS = select(_ml.manifest_id, _ml.blob_id).where(_ml.manifest_id.in_(_ids))


def _count_images(kind: Kind) -> Executable:
    return (
        update(s.blobs)
        .where(s.blobs.c.id == bindparam("bid"))
        .values({kind.images: kind.images + bindparam("delta")})
    )


_IMAGE_REFS = {TAGS.name: _count_images(TAGS)}


def _upsert_refs(dialect: str, kind: Kind) -> Executable:
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(s.blob_usage)
    return stmt.on_conflict_do_update(
        index_elements=[_u.blob_id, _u.image_id],
        set_={kind.refs.name: kind.refs + stmt.excluded[kind.refs.name]},
    ).returning(_u.blob_id, kind.refs)


_UPSERT = {(d, TAGS.name): _upsert_refs(d, TAGS) for d in ("sqlite", "postgresql")}


def _decrement_refs(kind: Kind) -> Executable:
    return (
        update(s.blob_usage)
        .where(_u.blob_id == bindparam("bid"), _u.image_id == bindparam("iid"))
        .values({kind.refs: kind.refs - bindparam("drop")})
    )


_DECREMENT = {TAGS.name: _decrement_refs(TAGS)}
_EMPTIED = {
    TAGS.name: delete(s.blob_usage)
    .where(_u.image_id == bindparam("iid"), _u.blob_id.in_(_ids), TAGS.refs <= 0)
    .returning(_u.blob_id, TAGS.refs)
}


def hold(
    conn: Connection,
    deltas: Mapping[int, int],
    kind: Kind = TAGS,
    *,
    known: Mapping[int, Edges] | None = None,
) -> None:
    """Change the holders of manifests by ``deltas`` (manifest id -> +n/-n) and carry
    every resulting change of liveness through the graph and the blob counters.
    ``known``: edges of some manifests, so they need not be read."""
    known = known or {}
    pending = {mid: d for mid, d in deltas.items() if d}
    blob_deltas: dict[tuple[int, int], int] = defaultdict(int)  # (image, blob) -> delta
    while pending:
        flipped: dict[int, int] = {}  # manifest -> +1 (became live) / -1 (died)
        by_delta: dict[int, list[int]] = defaultdict(list)
        for mid, d in sorted(pending.items()):
            by_delta[d].append(mid)
        for d, ids in sorted(by_delta.items()):
            for mid, now in conn.execute(_BUMP[kind.name], {"ids": ids, "delta": d}):
                before = now - d
                if now < 0:
                    raise AccountingError(
                        f"manifest {mid} would have {now} {kind.name} holders; run fsck --repair"
                    )
                if before == 0 and now > 0:
                    flipped[mid] = 1
                elif before > 0 and now == 0:
                    flipped[mid] = -1
        pending = defaultdict(int)
        if not flipped:
            break
        ids = sorted(flipped)
        # Referrers are looked up always: one may have arrived before its subject.
        for subject, referrer in conn.execute(_REFERRERS, {"ids": ids}):
            pending[referrer] += flipped[subject]
        blobs: dict[int, set[int]] = defaultdict(set)
        images: dict[int, int] = {}
        for mid in ids:
            if mid in known:
                images[mid] = known[mid].image_id
                blobs[mid] |= known[mid].blobs
                for child in known[mid].children:
                    pending[child] += flipped[mid]
        unknown = [mid for mid in ids if mid not in known]
        if unknown:
            for parent, child in conn.execute(_CHILDREN, {"ids": unknown}):
                pending[child] += flipped[parent]
            for mid, image_id, config in conn.execute(_CONFIGS, {"ids": unknown}):
                images[mid] = image_id
                if config is not None:
                    blobs[mid].add(config)
            for mid, blob_id in conn.execute(_LAYERS, {"ids": unknown}):
                blobs[mid].add(blob_id)
        for mid, held in blobs.items():
            for blob_id in held:
                blob_deltas[(images[mid], blob_id)] += flipped[mid]
        pending = {mid: d for mid, d in pending.items() if d}
    _apply_refs(conn, blob_deltas, kind)


def _apply_refs(conn: Connection, blob_deltas: Mapping[tuple[int, int], int], kind: Kind) -> None:
    """Add to ``blob_usage`` refs; rows appear and go with their first and last
    reference, and ``blobs.image_refs`` follows. Blob ids in order (lock order)."""
    ups = sorted((b, i, d) for (i, b), d in blob_deltas.items() if d > 0)
    downs = sorted((b, i, -d) for (i, b), d in blob_deltas.items() if d < 0)
    image_refs: dict[int, int] = defaultdict(int)
    if ups:
        rows = [{"blob_id": b, "image_id": i, kind.refs.name: d} for b, i, d in ups]
        upsert = _UPSERT[(conn.dialect.name, kind.name)]
        added = {b: d for b, _i, d in ups}
        # One image per call in practice; a blob's new row is one whose refs are
        # just what was added.
        for blob_id, refs in conn.execute(upsert, rows):
            if refs == added[blob_id]:
                image_refs[blob_id] += 1
    if downs:
        conn.execute(_DECREMENT[kind.name], [{"bid": b, "iid": i, "drop": d} for b, i, d in downs])
        per_image: dict[int, list[int]] = defaultdict(list)
        for b, i, _d in downs:
            per_image[i].append(b)
        for image_id, blob_ids in sorted(per_image.items()):
            for blob_id, refs in conn.execute(
                _EMPTIED[kind.name], {"iid": image_id, "ids": blob_ids}
            ):
                if refs < 0:
                    raise AccountingError(
                        f"blob {blob_id} would have {refs} references from image "
                        f"{image_id}; run fsck --repair"
                    )
                image_refs[blob_id] -= 1
    changes = [{"bid": b, "delta": d} for b, d in sorted(image_refs.items()) if d]
    if changes:
        conn.execute(_IMAGE_REFS[kind.name], changes)


def release(conn: Connection, manifest_id: int, kind: Kind = TAGS) -> None:
    """Take every holder from a manifest that is going away (its row must be locked)."""
    held = conn.execute(select(kind.holders).where(_m.id == manifest_id)).scalar()
    if held:
        hold(conn, {manifest_id: -int(held)}, kind)


def is_live(conn: Connection, manifest_id: int, kind: Kind = TAGS, *, lock: bool = False) -> bool:
    """Whether a manifest is live (``lock``: share-locked against a concurrent change
    of its holders, for a new referrer that counts it)."""
    q = select(kind.holders).where(_m.id == manifest_id)
    if lock:
        q = q.with_for_update(read=True)
    return bool(conn.execute(q).scalar())


def referrers_of(conn: Connection, image_id: int, digest: str) -> list[int]:
    return list(
        conn.execute(
            select(_m.id).where(_m.image_id == image_id, _m.subject_digest == digest)
        ).scalars()
    )


def closes_cycle(
    conn: Connection, subject_id: int, children: Iterable[int], referrers: Iterable[int]
) -> bool:
    """Whether a new manifest whose subject is ``subject_id``, with these children and
    these (already pushed) referrers, would reach its own subject: a loop of edges
    that would hold itself live. Walks only what the new manifest reaches."""
    frontier = set(children) | set(referrers)
    seen = set(frontier)
    while frontier:
        if subject_id in frontier:
            return True
        ids = sorted(frontier)
        nxt = {child for _p, child in conn.execute(_CHILDREN, {"ids": ids})}
        nxt |= {referrer for _s, referrer in conn.execute(_REFERRERS, {"ids": ids})}
        frontier = nxt - seen
        seen |= frontier
    return False


def drop_image(conn: Connection, image_id: int) -> set[int]:
    """Remove all usage of an image that is going away; returns the blobs it reached."""
    have = set(conn.execute(select(_u.blob_id).where(_u.image_id == image_id)).scalars())
    if have:
        conn.execute(delete(s.blob_usage).where(_u.image_id == image_id))
        conn.execute(_IMAGE_REFS[TAGS.name], [{"bid": b, "delta": -1} for b in sorted(have)])
    return have


# the full recomputation (fsck) -------------------------------------------------------

# Manifests reachable from the tags of one image. Edges are index -> child and
# subject -> referrer (referrers live in their subject's image). One recursive
# reference only, which PostgreSQL requires.
_LIVE = text(
    """
    WITH RECURSIVE edges(parent, child) AS (
        SELECT mc.parent_id, mc.child_id
        FROM manifest_children mc JOIN manifests p ON p.id = mc.parent_id
        WHERE p.image_id = :image_id
        UNION ALL
        SELECT sub.id, r.id
        FROM manifests r JOIN manifests sub
          ON sub.image_id = r.image_id AND sub.digest = r.subject_digest
        WHERE r.image_id = :image_id AND r.subject_digest IS NOT NULL AND sub.id != r.id
    ),
    live(id) AS (
        SELECT manifest_id FROM tags WHERE image_id = :image_id
        UNION
        SELECT e.child FROM edges e JOIN live ON e.parent = live.id
    )
    SELECT id FROM live
    """
)


@dataclass(frozen=True, slots=True)
class Expected:
    """The counters of one image as a full walk from its tags finds them."""

    holders: dict[int, int]  # every manifest of the image
    refs: dict[int, int]  # blob -> live manifests referencing it (only those > 0)


def expected(conn: Connection, image_id: int) -> Expected:
    live = set(conn.execute(_LIVE, {"image_id": image_id}).scalars())
    holders = dict.fromkeys(conn.execute(select(_m.id).where(_m.image_id == image_id)).scalars(), 0)
    for mid, count in conn.execute(
        select(s.tags.c.manifest_id, func.count())
        .where(s.tags.c.image_id == image_id)
        .group_by(s.tags.c.manifest_id)
    ):
        holders[mid] += int(count)
    ids = sorted(live)
    for start in range(0, len(ids), 5_000):
        chunk = ids[start : start + 5_000]
        for _parent, child in conn.execute(_CHILDREN, {"ids": chunk}):
            holders[child] += 1
        for _subject_id, referrer in conn.execute(_REFERRERS, {"ids": chunk}):
            holders[referrer] += 1
    refs: dict[int, int] = defaultdict(int)
    for start in range(0, len(ids), 5_000):
        chunk = ids[start : start + 5_000]
        per_manifest: dict[int, set[int]] = defaultdict(set)
        for mid, _image, config in conn.execute(_CONFIGS, {"ids": chunk}):
            if config is not None:
                per_manifest[mid].add(config)
        for mid, blob_id in conn.execute(_LAYERS, {"ids": chunk}):
            per_manifest[mid].add(blob_id)
        for held in per_manifest.values():
            for blob_id in held:
                refs[blob_id] += 1
    return Expected(holders, dict(refs))


def reachable_blob_ids(conn: Connection, image_id: int) -> set[int]:
    """Blobs a tag of the image reaches (the full walk)."""
    return set(expected(conn, image_id).refs)


def rebuild_image(conn: Connection, image_id: int) -> None:
    """Set the image's counters to what a full walk finds (``fsck --repair``, and
    data written without the registry's code, such as benchmark seeds)."""
    want = expected(conn, image_id)
    kept = dict(conn.execute(select(_m.id, _m.holders).where(_m.image_id == image_id)).all())
    fixes = [{"mid": m, "n": n} for m, n in sorted(want.holders.items()) if kept.get(m) != n]
    if fixes:
        conn.execute(
            update(s.manifests).where(_m.id == bindparam("mid")).values(holders=bindparam("n")),
            fixes,
        )
    have = dict(conn.execute(select(_u.blob_id, _u.refs).where(_u.image_id == image_id)).all())
    gone = sorted(set(have) - set(want.refs))
    new = sorted(set(want.refs) - set(have))
    changed = sorted(b for b in set(have) & set(want.refs) if have[b] != want.refs[b])
    if gone:
        conn.execute(delete(s.blob_usage).where(_u.image_id == image_id, _u.blob_id.in_(gone)))
    if new:
        conn.execute(
            s.blob_usage.insert(),
            [{"blob_id": b, "image_id": image_id, "refs": want.refs[b]} for b in new],
        )
    if changed:
        conn.execute(
            update(s.blob_usage)
            .where(_u.image_id == image_id, _u.blob_id == bindparam("bid"))
            .values(refs=bindparam("n")),
            [{"bid": b, "n": want.refs[b]} for b in changed],
        )
    deltas = [{"bid": b, "delta": 1} for b in new] + [{"bid": b, "delta": -1} for b in gone]
    if deltas:
        conn.execute(_IMAGE_REFS[TAGS.name], sorted(deltas, key=lambda d: d["bid"]))
