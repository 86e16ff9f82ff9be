"""Storage figures of a workspace, from the blob rows and the derived usage graph.

``blobs.image_refs`` counts the images that reach a blob from their tags (see
app.registry.usage), so the headline figures are one pass over the blob rows:

* stored: bytes of every blob held
* referenced: blobs reachable from some tag
* shared: blobs reachable from two or more images
* in trash: unreferenced, but held by the trash (app.registry.trash): a restore
  brings them back; GC frees them once their entries expire or are emptied
* pending: held but neither referenced nor in the trash (GC will review and free them)
* logical: as if every image stored its own copy (sum of size x image_refs)
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection, case, func, select

from app.core.storage import DeleteImpact
from app.registry.db import schema as s
from app.registry.db.idsets import in_ids, not_in_ids


@dataclass(frozen=True, slots=True)
class Totals:
    stored: int
    referenced: int
    shared: int
    pending: int
    logical: int
    blob_count: int
    in_trash: int = 0

    @property
    def saving(self) -> int:
        return self.logical - self.referenced


def totals(conn: Connection, workspace_id: int) -> Totals:
    b = s.blobs.c
    row = conn.execute(
        select(
            func.coalesce(func.sum(b.size), 0),
            func.coalesce(func.sum(case((b.image_refs > 0, b.size), else_=0)), 0),
            func.coalesce(func.sum(case((b.image_refs > 1, b.size), else_=0)), 0),
            func.coalesce(func.sum(b.size * b.image_refs), 0),
            func.count(),
            func.coalesce(
                func.sum(case(((b.image_refs == 0) & (b.trash_refs > 0), b.size), else_=0)), 0
            ),
        ).where(b.workspace_id == workspace_id)
    ).one()
    stored, referenced, shared, logical, count, in_trash = (int(v) for v in row)
    pending = stored - referenced - in_trash
    return Totals(stored, referenced, shared, pending, logical, count, in_trash)


# per repository ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepositoryBytes:
    exclusive: int  # reached by one image only, which lives in this repository
    shared: int  # reached by two or more images, at least one of them in this repository


def repository_bytes(conn: Connection, workspace_id: int) -> dict[int, RepositoryBytes]:
    """Exclusive and shared bytes per repository id (repositories with no usage are
    absent). A blob two images of one repository share counts once for it, as shared,
    like :func:`app.core.storage.summarize`."""
    u = s.blob_usage.c
    i = s.images.c
    b = s.blobs.c
    # A blob one image reaches has one usage row: a plain sum, no de-duplication.
    exclusive = dict(
        conn.execute(
            select(i.repository_id, func.sum(b.size))
            .select_from(s.blob_usage)
            .join(s.blobs, b.id == u.blob_id)
            .join(s.images, i.id == u.image_id)
            .where(i.workspace_id == workspace_id, b.image_refs == 1)
            .group_by(i.repository_id)
        ).all()
    )
    # Shared blobs are few (base layers), each counted once per repository reaching it.
    pairs = (
        select(i.repository_id.label("repository_id"), b.id, b.size)
        .select_from(s.blobs)
        .join(s.blob_usage, u.blob_id == b.id)
        .join(s.images, i.id == u.image_id)
        .where(b.workspace_id == workspace_id, b.image_refs > 1)
        .distinct()
        .subquery()
    )
    shared = dict(
        conn.execute(
            select(pairs.c.repository_id, func.sum(pairs.c.size)).group_by(pairs.c.repository_id)
        ).all()
    )
    return {
        int(rid): RepositoryBytes(int(exclusive.get(rid) or 0), int(shared.get(rid) or 0))
        for rid in set(exclusive) | set(shared)
    }


def repository_in_trash(conn: Connection, workspace_id: int) -> dict[int, int]:
    """Bytes in the trash per repository id: blobs no tag reaches that the trash
    entries (and images in the trash) of its images hold, each counted once per
    repository."""
    u, i, b = s.trash_usage.c, s.images.c, s.blobs.c
    pairs = (
        select(i.repository_id.label("repository_id"), b.id, b.size)
        .select_from(s.trash_usage)
        .join(s.blobs, b.id == u.blob_id)
        .join(s.images, i.id == u.image_id)
        .where(b.workspace_id == workspace_id, b.image_refs == 0)
        .distinct()
        .subquery()
    )
    return {
        int(rid): int(total or 0)
        for rid, total in conn.execute(
            select(pairs.c.repository_id, func.sum(pairs.c.size)).group_by(pairs.c.repository_id)
        )
    }


# delete impact -----------------------------------------------------------------


def _reachable_from(conn: Connection, manifest_ids: set[int]) -> set[int]:
    """Manifests reachable from ``manifest_ids``: index children, and referrers whose
    subject is reachable (referrers live in their subject's image)."""
    m = s.manifests.c
    seen = set(manifest_ids)
    frontier = set(manifest_ids)
    while frontier:
        ids = sorted(frontier)
        children = set(
            conn.execute(
                select(s.manifest_children.c.child_id).where(
                    in_ids(conn, s.manifest_children.c.parent_id, ids)
                )
            ).scalars()
        )
        sub = s.manifests.alias("sub")
        referrers = set(
            conn.execute(
                select(m.id)
                .join(sub, (sub.c.image_id == m.image_id) & (sub.c.digest == m.subject_digest))
                .where(in_ids(conn, sub.c.id, ids))
            ).scalars()
        )
        frontier = (children | referrers) - seen
        seen |= frontier
    return seen


def _blobs_of(conn: Connection, manifest_ids: set[int]) -> set[int]:
    if not manifest_ids:
        return set()
    ids = sorted(manifest_ids)
    layers = set(
        conn.execute(
            select(s.manifest_layers.c.blob_id).where(
                in_ids(conn, s.manifest_layers.c.manifest_id, ids)
            )
        ).scalars()
    )
    configs = set(
        conn.execute(
            select(s.manifests.c.config_blob_id).where(
                in_ids(conn, s.manifests.c.id, ids), s.manifests.c.config_blob_id.is_not(None)
            )
        ).scalars()
    )
    return layers | configs


def _holders(conn: Connection, blob_ids: list[int], image_ids: list[int]) -> dict[int, set[int]]:
    """Manifest id -> the given blobs it holds directly, within the given images."""
    m = s.manifests.c
    ml = s.manifest_layers.c
    out: dict[int, set[int]] = {}
    rows = conn.execute(
        select(ml.manifest_id, ml.blob_id)
        .join(s.manifests, m.id == ml.manifest_id)
        .where(in_ids(conn, ml.blob_id, blob_ids), in_ids(conn, m.image_id, image_ids))
        .union(
            select(m.id, m.config_blob_id).where(
                in_ids(conn, m.config_blob_id, blob_ids), in_ids(conn, m.image_id, image_ids)
            )
        )
    )
    for manifest_id, blob_id in rows:
        out.setdefault(int(manifest_id), set()).add(int(blob_id))
    return out


def _still_tagged(
    conn: Connection, blob_ids: set[int], image_ids: list[int], deleted_tags: set[int]
) -> set[int]:
    """Of ``blob_ids``, those some tag outside ``deleted_tags`` still reaches, walking
    up from the manifests that hold them (to parent indexes, and from referrers to
    their subjects) within ``image_ids``."""
    t = s.tags.c
    m = s.manifests.c
    kept: set[int] = set()
    # Most blobs sit directly under a tagged manifest: settle those in one query.
    direct = set(
        conn.execute(
            select(s.manifest_layers.c.blob_id)
            .join(s.tags, t.manifest_id == s.manifest_layers.c.manifest_id)
            .where(
                in_ids(conn, s.manifest_layers.c.blob_id, sorted(blob_ids)),
                in_ids(conn, t.image_id, image_ids),
                not_in_ids(conn, t.id, sorted(deleted_tags)),
            )
            .union(
                select(m.config_blob_id)
                .join(s.tags, t.manifest_id == m.id)
                .where(
                    in_ids(conn, m.config_blob_id, sorted(blob_ids)),
                    in_ids(conn, t.image_id, image_ids),
                    not_in_ids(conn, t.id, sorted(deleted_tags)),
                )
            )
        ).scalars()
    )
    kept |= direct
    rest = sorted(blob_ids - kept)
    if not rest:
        return kept
    carried = _holders(conn, rest, image_ids)  # manifest -> blobs it keeps alive if live
    # A manifest may be reached again carrying other blobs (a referrer's, through its
    # subject): walk on with what it has not carried yet.
    seen: dict[int, set[int]] = {k: set(v) for k, v in carried.items()}
    while carried:
        ids = sorted(carried)
        for manifest_id in conn.execute(
            select(t.manifest_id)
            .where(in_ids(conn, t.manifest_id, ids), not_in_ids(conn, t.id, sorted(deleted_tags)))
            .distinct()
        ).scalars():
            kept |= carried[manifest_id]
        up: dict[int, set[int]] = {}
        for child, parent in conn.execute(
            select(s.manifest_children.c.child_id, s.manifest_children.c.parent_id).where(
                in_ids(conn, s.manifest_children.c.child_id, ids)
            )
        ):
            up.setdefault(int(parent), set()).update(carried[child])
        sub = s.manifests.alias("sub")
        for referrer, subject in conn.execute(
            select(m.id, sub.c.id)
            .join(sub, (sub.c.image_id == m.image_id) & (sub.c.digest == m.subject_digest))
            .where(in_ids(conn, m.id, ids))
        ):
            up.setdefault(int(subject), set()).update(carried[referrer])
        carried = {}
        for manifest_id, blobs in up.items():
            new = blobs - kept - seen.get(manifest_id, set())
            if new:
                carried[manifest_id] = new
                seen.setdefault(manifest_id, set()).update(new)
    return kept


def delete_impact(
    conn: Connection,
    workspace_id: int,
    tag_ids: Collection[int],
    image_ids: Collection[int],
) -> DeleteImpact:
    """Bytes that deleting these tags and images makes unreferenced (freed once GC
    runs) and bytes of theirs that stay because other tags still reach them; the
    semantics of :func:`app.core.storage.delete_impact`, computed from the affected
    blobs only."""
    t = s.tags.c
    u = s.blob_usage.c
    b = s.blobs.c
    whole = set(image_ids)
    tag_rows = (
        conn.execute(
            select(t.id, t.image_id, t.manifest_id).where(
                in_ids(conn, t.id, sorted(tag_ids)), not_in_ids(conn, t.image_id, sorted(whole))
            )
        ).all()
        if tag_ids
        else []
    )
    deleted_tags = {int(r.id) for r in tag_rows}
    partial = sorted({int(r.image_id) for r in tag_rows})
    candidates = set(
        conn.execute(select(u.blob_id).where(in_ids(conn, u.image_id, sorted(whole)))).scalars()
    )
    candidates |= _blobs_of(conn, _reachable_from(conn, {int(r.manifest_id) for r in tag_rows}))
    if not candidates:
        return DeleteImpact(0, 0, 0, 0)
    affected = sorted(whole | set(partial))
    # Reached by an image outside the deletion: kept, whatever happens here.
    kept = set(
        conn.execute(
            select(u.blob_id)
            .where(
                in_ids(conn, u.blob_id, sorted(candidates)), not_in_ids(conn, u.image_id, affected)
            )
            .distinct()
        ).scalars()
    )
    if partial:
        kept |= _still_tagged(conn, candidates - kept, partial, deleted_tags)
    sizes = dict(
        conn.execute(
            select(b.id, b.size).where(
                in_ids(conn, b.id, sorted(candidates)), b.workspace_id == workspace_id
            )
        ).all()
    )
    freed = candidates - kept
    return DeleteImpact(
        freed=sum(int(sizes.get(x, 0)) for x in freed),
        kept=sum(int(sizes.get(x, 0)) for x in kept),
        freed_blobs=len(freed),
        kept_blobs=len(kept),
    )
