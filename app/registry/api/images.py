"""Images under a workspace, project or repository; one image; deleting one.

Sizes come from the derived usage graph (app.registry.gc.usage): an image's size is
the bytes of the distinct blobs reachable from its tags, and its exclusive size the
part no other image reaches (``blobs.image_refs == 1``), which is what deleting it
frees after GC. Both are indexed lookups per image.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy import ColumnElement, Connection, Select, func, select

from app.core.permissions import Permission
from app.registry import accounts, content
from app.registry.api.context import (
    Authenticated,
    ImageAccess,
    ImageId,
    image_access,
    readable_in,
    workspace_access,
)
from app.registry.api.errors import documented, repository_forbidden
from app.registry.api.models import ImageDetail, ImageItem
from app.registry.api.paging import DEFAULT_LIMIT, Cursor, Limit, Page, keyset_page, parse_sort
from app.registry.api.preconditions import IfMatch, image_etag, require_image_match
from app.registry.api.publish import publish_change
from app.registry.api.times import iso_or_none
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.errors import NotFound

router = APIRouter(responses=documented(400, 401, 404, 503))

SORTS = ("name", "tag_count", "size", "last_push")
ImageSort = Literal[
    "name", "-name", "tag_count", "-tag_count", "size", "-size", "last_push", "-last_push"
]


def _measures() -> dict[str, ColumnElement[Any]]:
    i = s.images.c
    usage = s.blob_usage.join(s.blobs, s.blobs.c.id == s.blob_usage.c.blob_id)
    return {
        "name": i.name,
        "tag_count": i.tag_count,  # kept with every tag change
        "size": select(func.coalesce(func.sum(s.blobs.c.size), 0))
        .select_from(usage)
        .where(s.blob_usage.c.image_id == i.id)
        .scalar_subquery(),
        "exclusive_size": select(func.coalesce(func.sum(s.blobs.c.size), 0))
        .select_from(usage)
        .where(s.blob_usage.c.image_id == i.id, s.blobs.c.image_refs == 1)
        .scalar_subquery(),
        # Never-pushed images (created by an upload only) sort as the oldest.
        "last_push": func.coalesce(i.last_push_at, 0),
    }


def _select(measures: dict[str, ColumnElement[Any]]) -> Select[Any]:
    i = s.images.c
    return (
        select(
            i.id,
            i.name,
            i.last_push_at,
            s.workspaces.c.slug.label("workspace"),
            s.repositories.c.slug.label("repository"),
            s.projects.c.key.label("project"),
            measures["tag_count"].label("tag_count"),
            measures["size"].label("size"),
            measures["exclusive_size"].label("exclusive_size"),
        )
        .select_from(s.images)
        .join(s.repositories, s.repositories.c.id == i.repository_id)
        .join(s.projects, s.projects.c.id == s.repositories.c.project_id)
        .join(s.workspaces, s.workspaces.c.id == i.workspace_id)
    )


def _item(row: Any) -> ImageItem:
    full_name = f"{row.workspace}/{row.repository}/{row.name}"
    return ImageItem(
        id=row.id,
        name=row.name,
        full_name=full_name,
        etag=image_etag(row.id, full_name),
        repository=row.repository,
        project=row.project,
        tag_count=row.tag_count,
        size=int(row.size),
        exclusive_size=int(row.exclusive_size),
        last_push=iso_or_none(row.last_push_at),
    )


@router.get(
    "/workspaces/{ws}/images",
    response_model=Page[ImageItem],
    summary="Images of a workspace, project or repository",
)
def list_images(
    caller: Authenticated,
    ws: str,
    project: Annotated[str | None, Query(max_length=32)] = None,
    repository: Annotated[str | None, Query(max_length=63)] = None,
    q: Annotated[str | None, Query(max_length=255, description="part of the name")] = None,
    sort: Annotated[ImageSort | None, Query(description="'-' prefix: descending")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[ImageItem]:
    order_by = parse_sort(sort, SORTS, "name")
    i = s.images.c
    with caller.registry.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        readable = readable_in(conn, caller.user, access)
        where: list[Any] = [i.workspace_id == access.id, i.trashed_at.is_(None)]
        if readable is not None:
            where.append(i.repository_id.in_(sorted(readable)))
        if project is not None:
            where.append(
                s.repositories.c.project_id == accounts.project_id(conn, access.id, project)
            )
        if repository is not None:
            repo = accounts.find_repository(conn, access.slug, repository)
            if repo is None or (readable is not None and repo.id not in readable):
                raise NotFound(f"no repository {ws}/{repository}")
            where.append(i.repository_id == repo.id)
        if q:
            where.append(func.lower(i.name).contains(q.lower(), autoescape=True))
        measures = _measures()
        key = [measures[order_by.field], i.id]
        query = _select(measures).where(*where)
        total = conn.execute(
            select(func.count())
            .select_from(s.images)
            .join(s.repositories, s.repositories.c.id == i.repository_id)
            .where(*where)
        ).scalar_one()
        kind = str if order_by.field == "name" else int
        rows, next_cursor = keyset_page(
            conn,
            query,
            key,
            order_by,
            (kind, int),
            limit,
            cursor,
            lambda row: [_sort_value(row, order_by.field), row.id],
        )
    return Page[ImageItem](items=[_item(r) for r in rows], next_cursor=next_cursor, total=total)


def _sort_value(row: Any, field: str) -> Any:
    if field == "name":
        return row.name
    if field == "last_push":
        return row.last_push_at or 0
    return int(getattr(row, field))


def image_detail(conn: Connection, access: ImageAccess) -> ImageDetail:
    row = conn.execute(_select(_measures()).where(s.images.c.id == access.image.id)).one()
    return ImageDetail(
        **_item(row).model_dump(),
        workspace=row.workspace,
        permission=access.permission.label,  # type: ignore[arg-type]
    )


@router.get("/images/{image_id}", response_model=ImageDetail, summary="One image")
def get_image(caller: Authenticated, image_id: ImageId, response: Response) -> ImageDetail:
    with caller.registry.db.read() as conn:
        detail = image_detail(conn, image_access(conn, caller.user, image_id))
    response.headers["ETag"] = detail.etag
    return detail


@router.delete(
    "/images/{image_id}",
    status_code=204,
    response_class=Response,
    responses=documented(403, 412, 428),
    summary="Delete an image with all its tags and manifests (admin); blobs wait for GC",
)
def delete_image(caller: Authenticated, image_id: ImageId, if_match: IfMatch) -> Response:
    reg = caller.registry
    with reg.db.read() as conn:
        access = image_access(conn, caller.user, image_id)
    if access.permission < Permission.ADMIN:
        raise repository_forbidden(Permission.ADMIN, access.repository_label, "delete an image")
    with reg.db.write() as conn:
        # Checked again where the delete happens: the image may have gone meanwhile.
        image = content.image_by_id(conn, image_id)
        if image is None:
            raise NotFound(f"no image {image_id}", detail={"image_id": image_id})
        label = content.image_label(conn, image)
        require_image_match(if_match, image.id, label, "delete an image")
        change = content.delete_image(conn, image, reg.timing, now_ms(), caller.name)
    publish_change(reg, access, change)
    return Response(status_code=204)
