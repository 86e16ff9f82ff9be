"""Storage figures of a workspace, from the blob rows and the derived usage graph.

``blobs.image_refs`` counts the images that reach a blob from their tags (see
app.registry.gc.usage), so the headline figures are one pass over the blob rows:

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
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, false, func, select, union_all

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


def _reachable_blobs(conn: Connection, image_ids: Collection[int], roots: Any) -> set[int]:
    """Blobs reachable from the manifests of the tags ``roots`` selects (a condition on
    ``tags``); see :func:`_reachable_from`."""
    return _reachable_from(conn, image_ids, select(s.tags.c.manifest_id.label("id")).where(roots))


def _reachable_from(conn: Connection, image_ids: Collection[int], roots: Any) -> set[int]:
    """Blobs reachable from the manifests ``roots`` selects (one column of manifest
    ids), following index children and referrers whose subject is reached. Both
    live in the image of what holds them, so the walk stays within ``image_ids``.
    One recursive query, however many roots: the usage graph's walk
    (app.registry.gc.usage) over a chosen set of manifests."""
    m = s.manifests.c
    mc = s.manifest_children.c
    ml = s.manifest_layers.c
    parent = s.manifests.alias("parent")
    sub = s.manifests.alias("sub")
    ref = s.manifests.alias("ref")
    edges = union_all(
        select(mc.parent_id.label("parent"), mc.child_id.label("child"))
        .join(parent, parent.c.id == mc.parent_id)
        .where(in_ids(conn, parent.c.image_id, image_ids)),
        select(sub.c.id, ref.c.id)
        .select_from(ref)
        .join(sub, (sub.c.image_id == ref.c.image_id) & (sub.c.digest == ref.c.subject_digest))
        .where(in_ids(conn, ref.c.image_id, image_ids), ref.c.subject_digest.is_not(None)),
    ).cte("edges")
    live = roots.cte("live", recursive=True)
    live = live.union(
        select(edges.c.child).select_from(edges.join(live, edges.c.parent == live.c.id))
    )
    query = (
        select(m.config_blob_id)
        .join(live, live.c.id == m.id)
        .where(m.config_blob_id.is_not(None))
        .union(select(ml.blob_id).join(live, live.c.id == ml.manifest_id))
    )
    return {int(b) for b in conn.execute(query).scalars()}


def manifests_impact(
    conn: Connection,
    workspace_id: int,
    image_ids: Collection[int],
    gone: Collection[int],
    staying: Collection[int],
) -> DeleteImpact:
    """:func:`delete_impact` of deleting tags (not whole images) when the caller has
    read every tag of the images they belong to in this transaction: ``image_ids``
    the images losing tags, ``gone`` the manifest ids the deleted tags point at,
    ``staying`` those the images' other tags point at. The same walk from a few
    thousand distinct manifests instead of from each tag: a cleanup plan deletes
    100,000 tags of 20,000 builds, and passing and matching the tag ids three times
    cost more than the walk (tests/registry/test_delete_impact_forms.py holds the
    two to the same figures)."""
    if not gone:
        return DeleteImpact(0, 0, 0, 0)
    m = s.manifests.c
    images = sorted(set(image_ids))
    candidates = _reachable_from(conn, images, select(m.id).where(in_ids(conn, m.id, gone)))
    if not candidates:
        return DeleteImpact(0, 0, 0, 0)
    kept = _used_elsewhere(conn, candidates, images)
    if staying:
        roots = select(m.id).where(in_ids(conn, m.id, staying))
        kept |= _reachable_from(conn, images, roots) & candidates
    return _sized(conn, workspace_id, candidates, kept)


def _used_elsewhere(conn: Connection, blobs: Collection[int], images: Collection[int]) -> set[int]:
    """Those of ``blobs`` an image outside ``images`` reaches: kept, whatever
    happens to ``images``."""
    u = s.blob_usage.c
    return set(
        conn.execute(
            select(u.blob_id)
            .where(in_ids(conn, u.blob_id, blobs), not_in_ids(conn, u.image_id, images))
            .distinct()
        ).scalars()
    )


def _sized(
    conn: Connection, workspace_id: int, candidates: set[int], kept: set[int]
) -> DeleteImpact:
    b = s.blobs.c
    sizes = dict(
        conn.execute(
            select(b.id, b.size).where(
                in_ids(conn, b.id, candidates), b.workspace_id == workspace_id
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


def delete_impact(
    conn: Connection,
    workspace_id: int,
    tag_ids: Collection[int],
    image_ids: Collection[int],
) -> DeleteImpact:
    """Bytes that deleting these tags and images makes unreferenced (freed once GC
    runs) and bytes of theirs that stay because other tags still reach them; the
    semantics of :func:`app.core.storage.delete_impact`, computed from the affected
    images only: what the deleted tags reach, what the images' other tags still
    reach, and which of those blobs other images reach (``blob_usage``)."""
    t = s.tags.c
    u = s.blob_usage.c
    whole = sorted(set(image_ids))
    # The deleted tags of images not deleted whole, as one condition built once: a
    # cleanup plan passes 100,000 ids, and reading them back or binding them again
    # for each query below cost more than the queries.
    deleted: ColumnElement[bool] = false()
    partial: list[int] = []
    if tag_ids:
        deleted = and_(in_ids(conn, t.id, tag_ids), not_in_ids(conn, t.image_id, whole))
        partial = sorted(
            int(i) for i in conn.execute(select(t.image_id).where(deleted).distinct()).scalars()
        )
    candidates: set[int] = set()
    if whole:
        candidates |= set(
            conn.execute(select(u.blob_id).where(in_ids(conn, u.image_id, whole))).scalars()
        )
    if partial:
        candidates |= _reachable_blobs(conn, partial, deleted)
    if not candidates:
        return DeleteImpact(0, 0, 0, 0)
    affected = sorted(set(whole) | set(partial))
    kept = _used_elsewhere(conn, candidates, affected)
    if partial:
        # Still reached from the partly deleted images' other tags.
        staying = and_(in_ids(conn, t.image_id, partial), ~deleted)
        kept |= _reachable_blobs(conn, partial, staying) & candidates
    return _sized(conn, workspace_id, candidates, kept)
