"""Tags of an image: a keyset-paginated listing that stays fast with 100,000 tags,
and deleting one or many.

Each order is served by an index: ``(image_id, name)`` (unique) for names, and
``(image_id, <key>, id)`` for push times, sizes and creation dates (a tag row keeps
copies of its manifest's size and creation date for this). ``other_tags`` for a
whole page is one windowed query over the page's manifests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy import ColumnElement, Connection, func, select

from app.core.names import is_valid_tag
from app.core.permissions import Permission
from app.registry import content
from app.registry.api.context import Authenticated, ImageAccess, ImageId, image_access
from app.registry.api.errors import documented, repository_forbidden
from app.registry.api.models import TagExpected, TagItem, TagResult, TagsDelete, TagsDeleted
from app.registry.api.paging import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    Page,
    json_response,
    keyset_page,
    parse_sort,
)
from app.registry.api.preconditions import IfMatch, PreconditionFailed, require_image_match
from app.registry.api.publish import publish_change
from app.registry.api.times import iso, iso_or_none, normalized
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.errors import NotFound

router = APIRouter(responses=documented(400, 401, 404, 503))

SORTS = ("name", "pushed_at", "size", "created")
TagSort = Literal[
    "name", "-name", "pushed_at", "-pushed_at", "size", "-size", "created", "-created"
]
OTHER_TAGS_SHOWN = 20

t = s.tags.c
m = s.manifests.c
_KEYS: dict[str, tuple[list[ColumnElement[Any]], tuple[type, ...]]] = {
    "name": ([t.name], (str,)),  # unique within the image
    "pushed_at": ([t.pushed_at, t.id], (int, int)),
    "size": ([t.manifest_size, t.id], (int, int)),
    "created": ([t.manifest_created, t.id], (str, int)),
}


def other_tags(
    conn: Connection, image_id: int, manifest_ids: Sequence[int]
) -> dict[int, tuple[list[str], int]]:
    """Per manifest: its first tag names (one more than shown) and its tag count."""
    if not manifest_ids:
        return {}
    ranked = (
        select(
            t.manifest_id,
            t.name,
            func.row_number().over(partition_by=t.manifest_id, order_by=t.name).label("rank"),
            func.count().over(partition_by=t.manifest_id).label("n"),
        )
        # By manifest only: a manifest lives in one image, and filtering on the image
        # too makes SQLite walk all of the image's tags instead of the page's.
        .where(t.manifest_id.in_(sorted(set(manifest_ids))))
        .subquery()
    )
    out: dict[int, tuple[list[str], int]] = defaultdict(lambda: ([], 0))
    for row in conn.execute(
        select(ranked.c.manifest_id, ranked.c.name, ranked.c.n)
        .where(ranked.c.rank <= OTHER_TAGS_SHOWN + 1)
        .order_by(ranked.c.manifest_id, ranked.c.rank)
    ):
        names, _ = out[row.manifest_id]
        names.append(row.name)
        out[row.manifest_id] = (names, row.n)
    return out


@router.get("/images/{image_id}/tags", response_model=Page[TagItem], summary="Tags of an image")
def list_tags(
    caller: Authenticated,
    image_id: ImageId,
    q: Annotated[str | None, Query(max_length=128, description="part of the tag")] = None,
    sort: Annotated[TagSort | None, Query(description="'-' prefix: descending")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    order_by = parse_sort(sort, SORTS, "name")
    key, types = _KEYS[order_by.field]
    with caller.registry.db.read() as conn:
        image_access(conn, caller.user, image_id)
        where: list[Any] = [t.image_id == image_id]
        if q:
            where.append(func.lower(t.name).contains(q.lower(), autoescape=True))
        total = conn.execute(select(func.count()).select_from(s.tags).where(*where)).scalar_one()
        query = (
            select(
                t.id,
                t.name,
                t.pushed_at,
                t.manifest_id,
                m.digest,
                m.media_type,
                m.total_size,
                m.platforms,
                m.created,
                t.last_pulled_at,
                m.last_pulled_at.label("digest_last_pulled_at"),
                key[0].label("sort_value"),
            )
            .select_from(s.tags)
            .join(s.manifests, m.id == t.manifest_id)
            .where(*where)
        )
        rows, next_cursor = keyset_page(
            conn,
            query,
            key,
            order_by,
            types,
            limit,
            cursor,
            lambda row: [row.sort_value] if len(key) == 1 else [row.sort_value, row.id],
        )
        others = other_tags(conn, image_id, [r.manifest_id for r in rows])
    items = []
    for r in rows:
        names, count = others.get(r.manifest_id, ([], 1))
        # Built unvalidated: every field comes typed from our own rows, and validating
        # a page of 1,000 was a quarter of its time. json_response serializes them.
        items.append(
            TagItem.model_construct(
                name=r.name,
                digest=r.digest,
                media_type=r.media_type,
                size=r.total_size,
                platforms=r.platforms.split(",") if r.platforms else [],
                created=normalized(r.created),
                pushed_at=iso(r.pushed_at),
                other_tags=[n for n in names if n != r.name][:OTHER_TAGS_SHOWN],
                other_tag_count=max(count - 1, 0),
                last_pulled=iso_or_none(r.last_pulled_at),
                digest_last_pulled=iso_or_none(r.digest_last_pulled_at),
            )
        )
    return json_response(Page[TagItem](items=items, next_cursor=next_cursor, total=total))


def _writable(caller: Authenticated, image_id: int, doing: str) -> ImageAccess:
    with caller.registry.db.read() as conn:
        access = image_access(conn, caller.user, image_id)
    if access.permission < Permission.WRITE:
        raise repository_forbidden(Permission.WRITE, access.repository_label, doing)
    return access


def _delete(
    caller: Authenticated,
    access: ImageAccess,
    if_match: str,
    names: list[str],
    expected: dict[str, str],
) -> tuple[list[str], dict[str, str]]:
    """Delete ``names`` of the image the precondition names; tags that moved away
    from their ``expected`` digest stay. Returns (deleted, {changed tag: its digest})."""
    reg = caller.registry
    with reg.db.write() as conn:
        image = content.image_by_id(conn, access.image.id)
        if image is None:
            raise NotFound(f"no image {access.image.id}", detail={"image_id": access.image.id})
        require_image_match(if_match, image.id, content.image_label(conn, image), "delete tags")
        changed: dict[str, str] = {}
        if expected:
            now_on = content.tag_digests(conn, image, sorted(expected))
            changed = {
                name: now_on[name]
                for name, digest in expected.items()
                if name in now_on and now_on[name] != digest
            }
        wanted = [name for name in names if name not in changed]
        deleted: list[str] = []
        change = None
        if wanted:
            deleted, _missing, change = content.delete_tags(
                conn, image, wanted, reg.timing, now_ms(), caller.name
            )
    if change is not None:
        publish_change(reg, access, change)
    return deleted, changed


@router.delete(
    "/images/{image_id}/tags/{tag}",
    status_code=204,
    response_class=Response,
    responses=documented(403, 412, 428),
    summary="Delete one tag (write); its manifest and blobs wait for GC",
)
def delete_tag(
    caller: Authenticated,
    image_id: ImageId,
    tag: str,
    if_match: IfMatch,
    digest: Annotated[
        str | None,
        Query(max_length=200, description="delete only if the tag is still on this digest"),
    ] = None,
) -> Response:
    access = _writable(caller, image_id, "delete a tag")
    if not is_valid_tag(tag):
        raise NotFound(f"no tag {tag!r}", detail={"tag": tag})
    deleted, changed = _delete(
        caller, access, if_match, [tag], {tag: digest} if digest is not None else {}
    )
    if tag in changed:
        raise PreconditionFailed(
            f"tag {tag!r} has moved to {changed[tag]} since it was listed on {digest}; "
            "it was not deleted",
            detail={"tag": tag, "digest": changed[tag], "expected": digest},
        )
    if not deleted:
        raise NotFound(f"no tag {tag!r}", detail={"tag": tag})
    return Response(status_code=204)


@router.post(
    "/images/{image_id}/tags/delete",
    response_model=TagsDeleted,
    responses=documented(403, 412, 428),
    summary="Delete many tags of an image in one step (write), with a result per tag",
)
def delete_tags(
    caller: Authenticated, image_id: ImageId, body: TagsDelete, if_match: IfMatch
) -> TagsDeleted:
    access = _writable(caller, image_id, "delete tags")
    names = [item if isinstance(item, str) else item.name for item in body.tags]
    expected = {
        item.name: item.digest
        for item in body.tags
        if isinstance(item, TagExpected) and is_valid_tag(item.name)
    }
    valid = [name for name in names if is_valid_tag(name)]
    deleted_list, changed = _delete(caller, access, if_match, valid, expected)
    deleted = set(deleted_list)
    results = []
    for name in names:
        if not is_valid_tag(name):
            results.append(TagResult(tag=name, status="error", message="not a valid tag name"))
        elif name in deleted:
            results.append(TagResult(tag=name, status="deleted", message="deleted"))
        elif name in changed:
            results.append(
                TagResult(
                    tag=name,
                    status="changed",
                    message=f"moved to {changed[name]} since it was listed; not deleted",
                )
            )
        else:
            results.append(TagResult(tag=name, status="not_found", message="no such tag"))
    return TagsDeleted(results=results, deleted=len(deleted))
