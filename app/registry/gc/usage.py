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

Two kinds of holders (:class:`Kind`), counted side by side with the same
propagation: **tags** (``holders``, ``blob_usage``, ``blobs.image_refs``) and the
**trash** (``trash_holders``, ``trash_usage``, ``blobs.trash_refs``). The trash's
roots are its entries that name a manifest, and the tags of images that are in the
trash themselves (their tags are no tag kind roots then). A blob reached from both
is *referenced*; from the trash only, *in trash*; from neither, *pending* GC.

A manifest deleted by digest while the trash holds it is *hidden*
(``manifests.trashed_at``): deleted as far as the OCI API goes. Edges into a
hidden manifest do not count for the tag kind -- a live index or subject does not
make it live, so it never holds tag counts (``holders`` stays 0); :func:`hide` and
:func:`unhide` take and give back what its live parents and subject gave it. For
the trash kind every edge counts: restoring what the trash names brings back what
it reaches.

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
from typing import Any

from sqlalchemy import (
    BindParameter,
    Column,
    Connection,
    Executable,
    Integer,
    Select,
    Table,
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
    """One kind of root that keeps manifests live, with the counters it keeps."""

    name: str
    holders: Column[int]  # on manifests
    usage: Table  # (blob_id, image_id, refs): per image, its held manifests per blob
    images: Column[int]  # on blobs: how many images hold the blob (its usage rows)
    # Edges into hidden manifests (deleted by digest) do not count.
    skips_hidden: bool


TAGS = Kind("tags", s.manifests.c.holders, s.blob_usage, s.blobs.c.image_refs, True)
TRASH = Kind("trash", s.manifests.c.trash_holders, s.trash_usage, s.blobs.c.trash_refs, False)
KINDS = (TAGS, TRASH)


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
_ids: BindParameter[list[int]] = bindparam("ids", expanding=True)


def _bump(kind: Kind) -> Executable:
    return (
        update(s.manifests)
        .where(_m.id.in_(_ids))
        .values({kind.holders: kind.holders + bindparam("delta")})
        .returning(_m.id, kind.holders)
    )


_child = s.manifests.alias("child")
_subject = s.manifests.alias("subject")
_referrer = s.manifests.alias("referrer")


def _children(kind: Kind) -> Select[Any]:
    q = select(_mc.parent_id, _mc.child_id).where(_mc.parent_id.in_(_ids))
    if kind.skips_hidden:
        q = q.join(_child, _child.c.id == _mc.child_id).where(_child.c.trashed_at.is_(None))
    return q


def _referrers(kind: Kind) -> Select[Any]:
    q = (
        select(_subject.c.id, _referrer.c.id)
        .join(
            _referrer,
            (_referrer.c.image_id == _subject.c.image_id)
            & (_referrer.c.subject_digest == _subject.c.digest),
        )
        .where(_subject.c.id.in_(_ids), _referrer.c.id != _subject.c.id)
    )
    if kind.skips_hidden:
        q = q.where(_referrer.c.trashed_at.is_(None))
    return q


_BUMP = {k.name: _bump(k) for k in KINDS}
_CHILDREN = {k.name: _children(k) for k in KINDS}
_REFERRERS = {k.name: _referrers(k) for k in KINDS}
_CONFIGS = select(_m.id, _m.image_id, _m.config_blob_id).where(_m.id.in_(_ids))
_LAYERS = select(_ml.manifest_id, _ml.blob_id).where(_ml.manifest_id.in_(_ids))


def _image_refs(kind: Kind) -> Executable:
    return (
        update(s.blobs)
        .where(s.blobs.c.id == bindparam("bid"))
        .values({kind.images: kind.images + bindparam("delta")})
    )


_IMAGE_REFS = {k.name: _image_refs(k) for k in KINDS}


def _upsert_refs(dialect: str, kind: Kind) -> Executable:
    u = kind.usage.c
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(kind.usage)
    return stmt.on_conflict_do_update(
        index_elements=[u.blob_id, u.image_id],
        set_={"refs": u.refs + stmt.excluded.refs},
    ).returning(u.blob_id, u.refs)


_UPSERT = {(d, k.name): _upsert_refs(d, k) for d in ("sqlite", "postgresql") for k in KINDS}


def _decrement_refs(kind: Kind) -> Executable:
    u = kind.usage.c
    return (
        update(kind.usage)
        .where(u.blob_id == bindparam("bid"), u.image_id == bindparam("iid"))
        .values(refs=u.refs - bindparam("drop"))
    )


def _emptied(kind: Kind) -> Executable:
    u = kind.usage.c
    return (
        delete(kind.usage)
        .where(u.image_id == bindparam("iid"), u.blob_id.in_(_ids), u.refs <= 0)
        .returning(u.blob_id, u.refs)
    )


_DECREMENT = {k.name: _decrement_refs(k) for k in KINDS}
_EMPTIED = {k.name: _emptied(k) for k in KINDS}


class BlobCounters:
    """Changes of the blobs' image counters (both kinds), written together in blob id
    order: blob rows are shared between images, so a transaction that changes both
    kinds (a delete into the trash, a restore) must not lock them in two passes,
    each in order but together out of order (PostgreSQL would find a deadlock)."""

    def __init__(self) -> None:
        self._deltas: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, kind: Kind, blob_id: int, delta: int) -> None:
        self._deltas[blob_id][kind.images.name] += delta

    def flush(self, conn: Connection) -> None:
        rows = []
        for blob_id in sorted(self._deltas):
            d = self._deltas[blob_id]
            rows.append({"bid": blob_id, **{k.images.name: d.get(k.images.name, 0) for k in KINDS}})
        self._deltas.clear()
        rows = [r for r in rows if any(r[k.images.name] for k in KINDS)]
        if rows:
            conn.execute(_BLOB_COUNTERS, rows)


_BLOB_COUNTERS = (
    update(s.blobs)
    .where(s.blobs.c.id == bindparam("bid"))
    .values({k.images: k.images + bindparam(k.images.name, type_=Integer()) for k in KINDS})
)


def hold(
    conn: Connection,
    deltas: Mapping[int, int],
    kind: Kind = TAGS,
    *,
    known: Mapping[int, Edges] | None = None,
    counters: BlobCounters | None = None,
) -> None:
    """Change the holders of manifests by ``deltas`` (manifest id -> +n/-n) and carry
    every resulting change of liveness through the graph and the blob counters.
    ``known``: edges of some manifests, so they need not be read. With ``counters``,
    the blobs' image counters are left to its ``flush``."""
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
        for subject, referrer in conn.execute(_REFERRERS[kind.name], {"ids": ids}):
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
            for parent, child in conn.execute(_CHILDREN[kind.name], {"ids": unknown}):
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
    own = counters if counters is not None else BlobCounters()
    _apply_refs(conn, blob_deltas, kind, own)
    if counters is None:
        own.flush(conn)


def _apply_refs(
    conn: Connection,
    blob_deltas: Mapping[tuple[int, int], int],
    kind: Kind,
    counters: BlobCounters,
) -> None:
    """Add to the kind's usage refs; rows appear and go with their first and last
    reference, and the blobs' image counter follows. Blob ids in order (lock order)."""
    ups = sorted((b, i, d) for (i, b), d in blob_deltas.items() if d > 0)
    downs = sorted((b, i, -d) for (i, b), d in blob_deltas.items() if d < 0)
    image_refs: dict[int, int] = defaultdict(int)
    if ups:
        rows = [{"blob_id": b, "image_id": i, "refs": d} for b, i, d in ups]
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
    for blob_id, delta in image_refs.items():
        counters.add(kind, blob_id, delta)


def release(
    conn: Connection,
    manifest_id: int,
    kind: Kind = TAGS,
    *,
    counters: BlobCounters | None = None,
) -> None:
    """Take every holder from a manifest that is going away (its row must be locked)."""
    held = conn.execute(select(kind.holders).where(_m.id == manifest_id)).scalar()
    if held:
        hold(conn, {manifest_id: -int(held)}, kind, counters=counters)


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
        nxt = {child for _p, child in conn.execute(_CHILDREN[TRASH.name], {"ids": ids})}
        nxt |= {r for _s, r in conn.execute(_REFERRERS[TRASH.name], {"ids": ids})}
        frontier = nxt - seen
        seen |= frontier
    return False


def drop_image(conn: Connection, image_id: int) -> set[int]:
    """Remove all usage of an image that is going away (of both kinds); returns the
    blobs it reached."""
    reached: set[int] = set()
    counters = BlobCounters()
    for kind in KINDS:
        u = kind.usage.c
        have = set(conn.execute(select(u.blob_id).where(u.image_id == image_id)).scalars())
        if have:
            conn.execute(delete(kind.usage).where(u.image_id == image_id))
            for blob_id in have:
                counters.add(kind, blob_id, -1)
        reached |= have
    counters.flush(conn)
    return reached


# hidden manifests --------------------------------------------------------------------


def _tag_edge_holds(conn: Connection, ids: list[int]) -> dict[int, int]:
    """Per manifest, what its live parent indexes and live subject give it in the tag
    kind if it is visible (hidden parents are never live: they hold no tag counts)."""
    got: dict[int, int] = defaultdict(int)
    parent = s.manifests.alias("parent")
    for child, in_live in conn.execute(
        select(_mc.child_id, func.count())
        .join(parent, parent.c.id == _mc.parent_id)
        .where(_mc.child_id.in_(ids), parent.c.holders > 0)
        .group_by(_mc.child_id),
    ):
        got[int(child)] += int(in_live)
    for referrer in conn.execute(
        select(_referrer.c.id)
        .join(
            _subject,
            (_subject.c.image_id == _referrer.c.image_id)
            & (_subject.c.digest == _referrer.c.subject_digest),
        )
        .where(_referrer.c.id.in_(ids), _subject.c.id != _referrer.c.id, _subject.c.holders > 0)
    ).scalars():
        got[int(referrer)] += 1
    return got


def hide(conn: Connection, manifest_id: int, now: int, counters: BlobCounters) -> None:
    """A manifest deleted by digest while the trash holds it: hidden from the OCI API,
    no longer live through a parent or subject (its tags must be gone already)."""
    conn.execute(update(s.manifests).where(_m.id == manifest_id).values(trashed_at=now))
    release(conn, manifest_id, TAGS, counters=counters)


def hidden_below(conn: Connection, manifest_ids: Iterable[int]) -> set[int]:
    """The hidden manifests among ``manifest_ids`` and the index children below them
    (what a restore must show again for them to pull whole)."""
    found: set[int] = set()
    seen = set(manifest_ids)
    frontier = set(seen)
    while frontier:
        ids = sorted(frontier)
        found |= set(
            conn.execute(select(_m.id).where(_m.id.in_(ids), _m.trashed_at.is_not(None))).scalars()
        )
        children = {c for _p, c in conn.execute(_CHILDREN[TRASH.name], {"ids": ids})}
        frontier = children - seen
        seen |= frontier
    return found


def unhide(
    conn: Connection, manifest_ids: Iterable[int], counters: BlobCounters | None = None
) -> None:
    """Show hidden manifests again (a restore, or a push of the same bytes): they take
    back the tag counts their live parents and subject give."""
    ids = sorted(set(manifest_ids))
    if not ids:
        return
    conn.execute(update(s.manifests).where(_m.id.in_(ids)).values(trashed_at=None))
    hold(conn, _tag_edge_holds(conn, ids), TAGS, counters=counters)


# the full recomputation (fsck) -------------------------------------------------------

# Manifests reachable from one image's roots of a kind. Edges are index -> child and
# subject -> referrer (referrers live in their subject's image); for the tag kind
# not into hidden manifests. One recursive reference only, which PostgreSQL requires.
_LIVE = """
    WITH RECURSIVE edges(parent, child) AS (
        SELECT mc.parent_id, mc.child_id
        FROM manifest_children mc JOIN manifests p ON p.id = mc.parent_id
        JOIN manifests c ON c.id = mc.child_id
        WHERE p.image_id = :image_id {child_visible}
        UNION ALL
        SELECT sub.id, r.id
        FROM manifests r JOIN manifests sub
          ON sub.image_id = r.image_id AND sub.digest = r.subject_digest
        WHERE r.image_id = :image_id AND r.subject_digest IS NOT NULL AND sub.id != r.id
          {referrer_visible}
    ),
    live(id) AS (
        {roots}
        UNION
        SELECT e.child FROM edges e JOIN live ON e.parent = live.id
    )
    SELECT id FROM live
"""
_IMAGE_TAGS = (
    "SELECT t.manifest_id FROM tags t JOIN images i ON i.id = t.image_id "
    "WHERE t.image_id = :image_id AND i.trashed_at IS {state}"
)
_LIVE_SQL = {
    TAGS.name: text(
        _LIVE.format(
            child_visible="AND c.trashed_at IS NULL",
            referrer_visible="AND r.trashed_at IS NULL",
            roots=_IMAGE_TAGS.format(state="NULL"),
        )
    ),
    TRASH.name: text(
        _LIVE.format(
            child_visible="",
            referrer_visible="",
            roots="SELECT manifest_id FROM trash_entries WHERE image_id = :image_id "
            "AND manifest_id IS NOT NULL UNION " + _IMAGE_TAGS.format(state="NOT NULL"),
        )
    ),
}


def _roots(conn: Connection, image_id: int, kind: Kind) -> dict[int, int]:
    """Root holds per manifest of the image, of this kind."""
    t, i = s.tags.c, s.images.c
    trashed = conn.execute(select(i.trashed_at).where(i.id == image_id)).scalar() is not None
    roots: dict[int, int] = defaultdict(int)
    if trashed == (kind is TRASH):
        for mid, count in conn.execute(
            select(t.manifest_id, func.count())
            .where(t.image_id == image_id)
            .group_by(t.manifest_id)
        ):
            roots[int(mid)] += int(count)
    if kind is TRASH:
        e = s.trash_entries.c
        for mid, count in conn.execute(
            select(e.manifest_id, func.count())
            .where(e.image_id == image_id, e.manifest_id.is_not(None))
            .group_by(e.manifest_id)
        ):
            roots[int(mid)] += int(count)
    return roots


@dataclass(frozen=True, slots=True)
class Expected:
    """The counters of one image and kind as a full walk from its roots finds them."""

    holders: dict[int, int]  # every manifest of the image
    refs: dict[int, int]  # blob -> held manifests referencing it (only those > 0)


def expected(conn: Connection, image_id: int, kind: Kind = TAGS) -> Expected:
    live = set(conn.execute(_LIVE_SQL[kind.name], {"image_id": image_id}).scalars())
    holders = dict.fromkeys(conn.execute(select(_m.id).where(_m.image_id == image_id)).scalars(), 0)
    for mid, count in _roots(conn, image_id, kind).items():
        holders[mid] += count
    ids = sorted(live)
    for start in range(0, len(ids), 5_000):
        chunk = ids[start : start + 5_000]
        for _parent, child in conn.execute(_CHILDREN[kind.name], {"ids": chunk}):
            holders[child] += 1
        for _subject_id, referrer in conn.execute(_REFERRERS[kind.name], {"ids": chunk}):
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
    """Set the image's counters (both kinds) to what a full walk finds (``fsck
    --repair``, and data written without the registry's code, such as benchmark
    seeds)."""
    for kind in KINDS:
        _rebuild(conn, image_id, kind)


def _rebuild(conn: Connection, image_id: int, kind: Kind) -> None:
    want = expected(conn, image_id, kind)
    kept: dict[int, int] = dict(
        conn.execute(select(_m.id, kind.holders).where(_m.image_id == image_id)).all()
    )
    fixes = [{"mid": m, "n": n} for m, n in sorted(want.holders.items()) if kept.get(m) != n]
    if fixes:
        conn.execute(
            update(s.manifests)
            .where(_m.id == bindparam("mid"))
            .values({kind.holders: bindparam("n")}),
            fixes,
        )
    u = kind.usage.c
    have = dict(conn.execute(select(u.blob_id, u.refs).where(u.image_id == image_id)).all())
    gone = sorted(set(have) - set(want.refs))
    new = sorted(set(want.refs) - set(have))
    changed = sorted(b for b in set(have) & set(want.refs) if have[b] != want.refs[b])
    if gone:
        conn.execute(delete(kind.usage).where(u.image_id == image_id, u.blob_id.in_(gone)))
    if new:
        conn.execute(
            kind.usage.insert(),
            [{"blob_id": b, "image_id": image_id, "refs": want.refs[b]} for b in new],
        )
    if changed:
        conn.execute(
            update(kind.usage)
            .where(u.image_id == image_id, u.blob_id == bindparam("bid"))
            .values(refs=bindparam("n")),
            [{"bid": b, "n": want.refs[b]} for b in changed],
        )
    deltas = [{"bid": b, "delta": 1} for b in new] + [{"bid": b, "delta": -1} for b in gone]
    if deltas:
        conn.execute(_IMAGE_REFS[kind.name], sorted(deltas, key=lambda d: d["bid"]))
