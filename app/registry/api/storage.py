"""Storage figures of a workspace: the summary, shared layers and delete impact.

Headline figures are workspace-wide (they reveal no names); everything that names a
repository, an image or a layer is limited to what the caller may read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import Connection, exists, func, select, tuple_

from app.registry import accounts, uploads
from app.registry.api.context import Authenticated, WorkspaceAccess, readable_in, workspace_access
from app.registry.api.errors import documented
from app.registry.api.models import (
    ImageRef,
    Impact,
    ImpactRequest,
    RepositoryStorage,
    SharedLayer,
    StayingTags,
    Storage,
)
from app.registry.api.paging import DEFAULT_LIMIT, Cursor, Limit, Page, keyset_page, parse_sort
from app.registry.db import schema as s
from app.registry.errors import NotFound
from app.registry.gc import storage

router = APIRouter(responses=documented(400, 401, 404, 503))

IMAGES_SHOWN = 50
LayerSort = Literal["size", "-size", "image_count", "-image_count"]
b = s.blobs.c
u = s.blob_usage.c
i = s.images.c


@router.get("/workspaces/{ws}/storage", response_model=Storage, summary="Storage figures")
def get_storage(caller: Authenticated, ws: str) -> Storage:
    with caller.registry.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        return storage_figures(conn, readable_in(conn, caller.user, access), access.id)


def storage_figures(conn: Connection, readable: set[int] | None, workspace_id: int) -> Storage:
    """The workspace's figures, and the repositories among ``readable`` (None: all)."""
    totals = storage.totals(conn, workspace_id)
    per_repo = storage.repository_bytes(conn, workspace_id)
    in_trash = storage.repository_in_trash(conn, workspace_id)
    repos = conn.execute(
        select(s.repositories.c.id, s.repositories.c.slug, s.projects.c.key)
        .join(s.projects, s.projects.c.id == s.repositories.c.project_id)
        .where(s.repositories.c.workspace_id == workspace_id)
        .order_by(s.repositories.c.slug)
    ).all()
    image_counts: dict[int, int] = dict(
        conn.execute(
            select(i.repository_id, func.count())
            .where(i.workspace_id == workspace_id, i.trashed_at.is_(None))
            .group_by(i.repository_id)
        ).all()
    )
    uploading, upload_count = uploads.open_uploads(conn, workspace_id)
    empty = storage.RepositoryBytes(0, 0)
    return Storage(
        uploading=uploading,
        upload_count=upload_count,
        stored=totals.stored,
        referenced=totals.referenced,
        shared=totals.shared,
        pending=totals.pending,
        logical=totals.logical,
        saving=totals.saving,
        blob_count=totals.blob_count,
        in_trash=totals.in_trash,
        repositories=[
            RepositoryStorage(
                slug=r.slug,
                project=r.key,
                exclusive=per_repo.get(r.id, empty).exclusive,
                shared=per_repo.get(r.id, empty).shared,
                image_count=image_counts.get(r.id, 0),
                in_trash=in_trash.get(r.id, 0),
            )
            for r in repos
            if readable is None or r.id in readable
        ],
    )


def _layer_images(
    conn: Connection, blob_ids: list[int], readable: set[int] | None
) -> dict[int, list[ImageRef]]:
    """Per blob, the first images (by name) that reach it and the caller may read."""
    where: list[Any] = [u.blob_id.in_(blob_ids)]
    if readable is not None:
        where.append(i.repository_id.in_(sorted(readable)))
    full_name = s.workspaces.c.slug + "/" + s.repositories.c.slug + "/" + i.name
    ranked = (
        select(
            u.blob_id,
            i.id,
            full_name.label("full_name"),
            func.row_number().over(partition_by=u.blob_id, order_by=(full_name, i.id)).label("n"),
        )
        .select_from(s.blob_usage)
        .join(s.images, i.id == u.image_id)
        .join(s.repositories, s.repositories.c.id == i.repository_id)
        .join(s.workspaces, s.workspaces.c.id == i.workspace_id)
        .where(*where)
        .subquery()
    )
    out: dict[int, list[ImageRef]] = {}
    for row in conn.execute(
        select(ranked.c.blob_id, ranked.c.id, ranked.c.full_name)
        .where(ranked.c.n <= IMAGES_SHOWN)
        .order_by(ranked.c.blob_id, ranked.c.n)
    ):
        out.setdefault(row.blob_id, []).append(ImageRef(id=row.id, full_name=row.full_name))
    return out


@router.get(
    "/workspaces/{ws}/storage/shared-layers",
    response_model=Page[SharedLayer],
    summary="Blobs that two or more images reach (largest first by default)",
)
def shared_layers(
    caller: Authenticated,
    ws: str,
    repository: Annotated[str | None, Query(max_length=63)] = None,
    sort: Annotated[LayerSort | None, Query(description="'-' prefix: descending")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[SharedLayer]:
    order_by = parse_sort(sort, ("size", "image_count"), "-size")
    key = [b.size if order_by.field == "size" else b.image_refs, b.id]
    with caller.registry.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        readable = readable_in(conn, caller.user, access)
        where: list[Any] = [b.workspace_id == access.id, b.image_refs >= 2]
        visible: list[Any] = []
        if readable is not None:
            visible.append(i.repository_id.in_(sorted(readable)))
        if repository is not None:
            repo = accounts.find_repository(conn, access.slug, repository)
            if repo is None or (readable is not None and repo.id not in readable):
                raise NotFound(f"no repository {ws}/{repository}")
            visible = [i.repository_id == repo.id]
        if visible:
            where.append(
                exists()
                .where(u.blob_id == b.id)
                .where(i.id == u.image_id)
                .where(*visible)
                .correlate(s.blobs)
            )
        total = conn.execute(select(func.count()).select_from(s.blobs).where(*where)).scalar_one()
        query = select(b.id, b.digest, b.size, b.image_refs).where(*where)
        rows, next_cursor = keyset_page(
            conn,
            query,
            key,
            order_by,
            (int, int),
            limit,
            cursor,
            lambda row: [int(row.size if order_by.field == "size" else row.image_refs), row.id],
        )
        images = _layer_images(conn, [r.id for r in rows], readable)
    return Page[SharedLayer](
        items=[
            SharedLayer(
                digest=r.digest,
                size=r.size,
                image_count=r.image_refs,
                images=images.get(r.id, []),
            )
            for r in rows
        ],
        next_cursor=next_cursor,
        total=total,
    )


def _readable_image_ids(
    conn: Connection, access: WorkspaceAccess, readable: set[int] | None, ids: set[int]
) -> None:
    found = dict(
        conn.execute(
            select(i.id, i.repository_id).where(i.id.in_(sorted(ids)), i.workspace_id == access.id)
        ).all()
    )
    for image_id in sorted(ids):
        repo_id = found.get(image_id)
        if repo_id is None or (readable is not None and repo_id not in readable):
            raise NotFound(f"no image {image_id}", detail={"image_id": image_id})


@router.post(
    "/workspaces/{ws}/storage/delete-impact",
    response_model=Impact,
    summary="Bytes freed after GC (and kept because others share them) if these go",
)
def delete_impact(caller: Authenticated, ws: str, body: ImpactRequest) -> Impact:
    t = s.tags.c
    with caller.registry.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        readable = readable_in(conn, caller.user, access)
        _readable_image_ids(
            conn, access, readable, set(body.images) | {ref.image_id for ref in body.tags}
        )
        wanted = sorted({(ref.image_id, ref.tag) for ref in body.tags})
        tag_ids: set[int] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            tag_ids |= set(
                conn.execute(select(t.id).where(tuple_(t.image_id, t.name).in_(chunk))).scalars()
            )
        impact = storage.delete_impact(conn, access.id, tag_ids, set(body.images))
        deleted = _deleted_tag_count(conn, tag_ids, set(body.images))
        staying = _staying_tags(conn, tag_ids, set(body.images))
    return Impact(
        freed=impact.freed,
        kept=impact.kept,
        freed_blobs=impact.freed_blobs,
        kept_blobs=impact.kept_blobs,
        tags=deleted,
        staying=staying,
        trash_retention_s=caller.registry.timing.trash_retention / 1000,
    )


STAYING_NAMED = 20


def _deleted_tag_count(conn: Connection, tag_ids: set[int], image_ids: set[int]) -> int:
    t = s.tags.c
    whole = sorted(image_ids)
    count = 0
    if whole:
        count += conn.execute(select(func.count()).where(t.image_id.in_(whole))).scalar_one()
    if tag_ids:
        count += conn.execute(
            select(func.count()).where(t.id.in_(sorted(tag_ids)), t.image_id.not_in(whole))
        ).scalar_one()
    return int(count)


def _staying_tags(conn: Connection, tag_ids: set[int], image_ids: set[int]) -> list[StayingTags]:
    """For each manifest a deleted tag points at: how many other tags of its image
    point at it too (they stay, and keep the manifest), and the first of them by
    name. Counted here, not from a listing's capped list of other tags."""
    t = s.tags.c
    m = s.manifests.c
    if not tag_ids:
        return []
    ids = sorted(tag_ids)
    manifests = sorted(
        set(
            conn.execute(
                select(t.manifest_id).where(t.id.in_(ids), t.image_id.not_in(sorted(image_ids)))
            ).scalars()
        )
    )
    if not manifests:
        return []
    others = (t.manifest_id.in_(manifests), t.id.not_in(ids))
    counts: dict[int, int] = {
        int(manifest_id): int(count)
        for manifest_id, count in conn.execute(
            select(t.manifest_id, func.count()).where(*others).group_by(t.manifest_id)
        ).tuples()
    }
    ranked = (
        select(
            t.manifest_id,
            t.name,
            func.row_number().over(partition_by=t.manifest_id, order_by=t.name).label("n"),
        )
        .where(*others)
        .subquery()
    )
    names: dict[int, list[str]] = {}
    for manifest_id, name in conn.execute(
        select(ranked.c.manifest_id, ranked.c.name)
        .where(ranked.c.n <= STAYING_NAMED)
        .order_by(ranked.c.manifest_id, ranked.c.n)
    ).tuples():
        names.setdefault(manifest_id, []).append(name)
    rows = conn.execute(
        select(m.id, m.image_id, m.digest).where(m.id.in_(sorted(counts))).order_by(m.id)
    ).all()
    return [
        StayingTags(
            image_id=row.image_id,
            digest=row.digest,
            count=counts[row.id],
            tags=names.get(row.id, []),
        )
        for row in rows
    ]
