"""Tags of an image: a keyset-paginated listing that stays fast with 100,000 tags,
and deleting one or many.

Each order is served by an index: ``(image_id, name)`` (unique) for names, and
``(image_id, <key>, id)`` for push times, sizes and creation dates (a tag row keeps
copies of its manifest's size and creation date for this). ``other_tags`` for a
page are ranges of ``ix_tags_manifest`` over those of its manifests that another
holder keeps too (see :func:`other_tags`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Response
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Select,
    bindparam,
    func,
    select,
)

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
    keyset_page,
    parse_sort,
)
from app.registry.api.preconditions import IfMatch, PreconditionFailed, require_image_match
from app.registry.api.publish import publish_change
from app.registry.api.tag_page_json import OTHER_TAGS_SHOWN, page_json
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.errors import NotFound

router = APIRouter(responses=documented(400, 401, 404, 503))

SORTS = ("name", "pushed_at", "size", "created")
TagSort = Literal[
    "name", "-name", "pushed_at", "-pushed_at", "size", "-size", "created", "-created"
]

t = s.tags.c
m = s.manifests.c
_KEYS: dict[str, tuple[list[ColumnElement[Any]], tuple[type, ...]]] = {
    "name": ([t.name], (str,)),  # unique within the image
    "pushed_at": ([t.pushed_at, t.id], (int, int)),
    "size": ([t.manifest_size, t.id], (int, int)),
    "created": ([t.manifest_created, t.id], (str, int)),
}


_ids: BindParameter[list[int]] = bindparam("ids", expanding=True)
_TAG_COUNTS = (
    select(t.manifest_id, func.count()).where(t.manifest_id.in_(_ids)).group_by(t.manifest_id)
)
_TAG_NAMES = select(t.manifest_id, t.name).where(t.manifest_id.in_(_ids))
_FIRST_NAMES = (
    select(t.name)
    .where(t.manifest_id == bindparam("mid"))
    .order_by(t.name)
    .limit(OTHER_TAGS_SHOWN + 1)
)


def other_tags(
    conn: Connection, image_id: int, manifest_ids: Sequence[int]
) -> dict[int, tuple[list[str], int]]:
    """Per manifest: its first tag names (one more than shown) and its tag count.

    Ranges of ``ix_tags_manifest`` (manifest, name): counts for the page's manifests,
    then the names of those with a few tags in one query, and the first names of
    each with many (a manifest with 100,000 tags costs a range of 21, not a sort).
    A manifest with one tag gets no names (its tag is the caller's row)."""
    ids = sorted(set(manifest_ids))
    if not ids:
        return {}
    counts = {int(mid): int(n) for mid, n in conn.execute(_TAG_COUNTS, {"ids": ids})}
    out: dict[int, tuple[list[str], int]] = {mid: ([], n) for mid, n in counts.items()}
    # A manifest with one tag has no other: that tag is the page's own row (the common
    # case, a tag per build), so its name need not be read.
    few = [mid for mid, n in counts.items() if 1 < n <= OTHER_TAGS_SHOWN + 1]
    for mid, name in conn.execute(_TAG_NAMES, {"ids": few}) if few else ():
        out[mid][0].append(name)
    for mid in few:
        out[mid][0].sort()
    for mid in (mid for mid, n in counts.items() if n > OTHER_TAGS_SHOWN + 1):
        out[mid][0].extend(conn.execute(_FIRST_NAMES, {"mid": mid}).scalars())
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
            total = conn.execute(
                select(func.count()).select_from(s.tags).where(*where)
            ).scalar_one()
        else:  # kept with every tag change: no count of the image's tags per page
            total = conn.execute(
                select(s.images.c.tag_count).where(s.images.c.id == image_id)
            ).scalar_one()
        # The columns page_json reads (ROW_FIELDS), then the sort key's if it is not
        # the name: the cursor is the last row's key.
        cursor_columns: list[ColumnElement[Any]] = (
            [] if order_by.field == "name" else [key[0].label("sort_value"), t.id]
        )
        query: Select[Any] = (
            select(
                t.name,
                t.pushed_at,
                t.manifest_id,
                m.holders,
                m.digest,
                m.media_type,
                m.total_size,
                m.platforms,
                m.created,
                t.last_pulled_at,
                m.last_pulled_at.label("digest_last_pulled_at"),
                *cursor_columns,
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
            lambda row: list(row[-2:] if cursor_columns else row[:1]),
        )
        page = cast(list[tuple[Any, ...]], rows)  # Rows are tuples; typed without columns
        # Only a manifest with another holder than this row's tag can have other tags
        # (holders counts its tags, live parent indexes and a live subject): with a tag
        # per build, a page asks nothing more.
        others = other_tags(conn, image_id, [r[2] for r in page if r[3] > 1])
    # Written as text straight from the rows: a dict per row serialized by pydantic
    # was a third of a page's CPU.
    return Response(page_json(page, others, next_cursor, total), media_type="application/json")


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
