"""Recently deleted: the trash of a workspace (DESIGN.md §1, issue 13).

Who may do what is the repository's permission, checked here per entry: every
entry of a readable repository is listed; restoring a tag (or a manifest deleted by
digest) needs write, restoring an image and emptying need admin. A bulk restore or
empty answers per entry; an entry the caller may not see answers ``not_found``, one
it may see but not act on ``forbidden``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import Connection, func, select

from app.core.permissions import Permission
from app.registry import accounts, trash, trash_records
from app.registry.accounts import Repository
from app.registry.api.context import Authenticated, WorkspaceAccess, readable_in, workspace_access
from app.registry.api.errors import documented, repository_forbidden
from app.registry.api.models import (
    TrashEmptied,
    TrashEmpty,
    TrashEmptyResult,
    TrashEntry,
    TrashKind,
    TrashRestore,
    TrashRestored,
    TrashRestoreResult,
)
from app.registry.api.paging import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    Page,
    json_response,
    keyset_page,
    parse_sort,
)
from app.registry.api.times import iso
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.errors import NotFound

router = APIRouter(responses=documented(400, 401, 403, 404, 503))
e = s.trash_entries.c

SORTS = ["deleted_at", "expires_at", "size", "image"]
TrashSort = Literal[
    "deleted_at", "-deleted_at", "expires_at", "-expires_at", "size", "-size", "image", "-image"
]
_SORT_TYPES: dict[str, type] = {"deleted_at": int, "expires_at": int, "size": int, "image": str}


def _item(row: Any) -> TrashEntry:
    return TrashEntry(
        id=row.id,
        kind=row.kind,
        image_id=row.image_id,
        image=row.full_name,
        repository=row.repository,
        tag=row.tag,
        digest=row.digest,
        replaced_by=row.replaced_by,
        size=row.size,
        tag_count=row.tag_count,
        action=row.action,
        deleted_by=row.deleted_by,
        deleted_at=iso(row.deleted_at),
        expires_at=iso(row.expires_at),
    )


def _repository_filter(
    conn: Connection, access: WorkspaceAccess, readable: set[int] | None, repository: str
) -> int:
    repo = accounts.find_repository(conn, access.slug, repository)
    if repo is None or (readable is not None and repo.id not in readable):
        raise NotFound(f"no repository {access.slug}/{repository}")
    return repo.id


@router.get(
    "/workspaces/{ws}/trash",
    response_model=Page[TrashEntry],
    summary="Recently deleted tags and images of a workspace, repository or image (read)",
)
def list_trash(
    caller: Authenticated,
    ws: str,
    repository: Annotated[str | None, Query(max_length=63)] = None,
    image_id: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None,
    q: Annotated[str | None, Query(max_length=255, description="part of image:tag")] = None,
    kind: TrashKind | None = None,
    deleted_by: Annotated[str | None, Query(max_length=64)] = None,
    sort: Annotated[TrashSort | None, Query(description="'-' prefix: descending")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Any:
    order_by = parse_sort(sort, SORTS, "-deleted_at")
    with caller.registry.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        readable = readable_in(conn, caller.user, access)
        where: list[Any] = []
        if readable is not None:
            where.append(e.repository_id.in_(sorted(readable)))
        if repository is not None:
            where.append(e.repository_id == _repository_filter(conn, access, readable, repository))
        if image_id is not None:
            where.append(e.image_id == image_id)
        if kind is not None:
            where.append(e.kind == kind)
        if deleted_by is not None:
            where.append(e.deleted_by == deleted_by)
        if q:
            label = s.images.c.name + ":" + func.coalesce(e.tag, "")
            where.append(func.lower(label).contains(q.lower(), autoescape=True))
        query = trash.listing(access.id).where(*where)
        field = {
            "deleted_at": e.deleted_at,
            "expires_at": e.expires_at,
            "size": e.size,
            "image": trash.full_name_column(),
        }[order_by.field]
        total = conn.execute(
            select(func.count())
            .select_from(s.trash_entries)
            .join(s.images, s.images.c.id == e.image_id)
            .where(e.workspace_id == access.id, *where)
        ).scalar_one()
        attr = "full_name" if order_by.field == "image" else order_by.field
        rows, next_cursor = keyset_page(
            conn,
            query,
            [field, e.id],
            order_by,
            (_SORT_TYPES[order_by.field], int),
            limit,
            cursor,
            lambda row: [getattr(row, attr), row.id],
        )
    page = Page[TrashEntry](items=[_item(r) for r in rows], next_cursor=next_cursor, total=total)
    return json_response(page)


class _Permissions:
    """The caller's permission per repository, looked up once each."""

    def __init__(self, conn: Connection, caller: Authenticated) -> None:
        self.conn = conn
        self.caller = caller
        self._known: dict[int, tuple[Repository | None, Permission]] = {}

    def on(self, repository_id: int) -> tuple[Repository | None, Permission]:
        if repository_id not in self._known:
            repo = accounts.repository_by_id(self.conn, repository_id)
            perm = (
                accounts.permission_on(self.conn, self.caller.user, repo)
                if repo is not None
                else Permission.NONE
            )
            self._known[repository_id] = (repo, perm)
        return self._known[repository_id]


def _needed(entry: trash.Entry) -> Permission:
    return Permission.ADMIN if entry.kind == trash_records.KIND_IMAGE else Permission.WRITE


def _sorted_out(
    conn: Connection,
    caller: Authenticated,
    access: WorkspaceAccess,
    ids: Iterable[int],
    needed: Callable[[trash.Entry], Permission],
) -> tuple[dict[int, trash.Entry], dict[int, TrashRestoreResult]]:
    """The entries the caller may act on, and why not for each other id."""
    perms = _Permissions(conn, caller)
    allowed: dict[int, trash.Entry] = {}
    refused: dict[int, TrashRestoreResult] = {}
    wanted = list(ids)
    found = {x.id: x for x in trash.entries_by_id(conn, wanted)}
    for entry_id in wanted:
        entry = found.get(entry_id)
        repo, perm = (None, Permission.NONE) if entry is None else perms.on(entry.repository_id)
        if entry is None or entry.workspace_id != access.id or perm < Permission.READ:
            refused[entry_id] = TrashRestoreResult(
                id=entry_id,
                status="not_found",
                message="no such entry in the trash of this workspace",
            )
        elif perm < needed(entry):
            where = f"{access.slug}/{repo.slug}" if repo is not None else access.slug
            refused[entry_id] = TrashRestoreResult(
                id=entry_id,
                status="forbidden",
                message=f"{needed(entry).label} permission on {where} is required",
            )
        else:
            allowed[entry_id] = entry
    return allowed, refused


@router.post(
    "/workspaces/{ws}/trash/restore",
    response_model=TrashRestored,
    summary="Restore entries (a tag: write; an image: admin), with a result per entry",
)
def restore_trash(caller: Authenticated, ws: str, body: TrashRestore) -> TrashRestored:
    reg = caller.registry
    ids = [item.id for item in body.entries]
    with reg.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        allowed, refused = _sorted_out(conn, caller, access, ids, _needed)
    wanted = [trash.Restoring(item.id, item.as_name) for item in body.entries if item.id in allowed]
    done = {o.entry_id: o for o in trash.restore(reg, wanted, caller.name)} if wanted else {}
    results: list[TrashRestoreResult] = []
    for item in body.entries:
        if item.id in refused:
            results.append(refused[item.id])
            continue
        o = done[item.id]
        results.append(
            TrashRestoreResult(
                id=o.entry_id,
                status=o.status,  # type: ignore[arg-type]
                message=o.message,
                image_id=o.image_id,
                tag=o.tag,
                digest=o.digest,
            )
        )
    restored = sum(1 for r in results if r.status == "restored")
    return TrashRestored(results=results, restored=restored)


def _matching(
    conn: Connection, caller: Authenticated, access: WorkspaceAccess, body: TrashEmpty
) -> list[int]:
    """Every entry ``all`` names (before permissions)."""
    readable = readable_in(conn, caller.user, access)
    where: list[Any] = [e.workspace_id == access.id]
    if readable is not None:
        where.append(e.repository_id.in_(sorted(readable)))
    if body.repository is not None:
        where.append(e.repository_id == _repository_filter(conn, access, readable, body.repository))
    if body.older_than_s is not None:
        where.append(e.deleted_at <= now_ms() - int(body.older_than_s * 1000))
    return list(conn.execute(select(e.id).where(*where).order_by(e.id)).scalars())


@router.post(
    "/workspaces/{ws}/trash/empty",
    response_model=TrashEmptied,
    summary="Empty the trash (admin): all of it or the entries given; GC then frees what they held",
)
def empty_trash(caller: Authenticated, ws: str, body: TrashEmpty) -> TrashEmptied:
    reg = caller.registry
    with reg.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        ids = _unique(
            [*(body.entries or []), *(_matching(conn, caller, access, body) if body.all else [])]
        )
        allowed, refused = _sorted_out(conn, caller, access, ids, lambda _x: Permission.ADMIN)
        if body.all and ids and not allowed:
            # The caller may see all of it but empty none: a 403 that says what it takes.
            first = trash.entries_by_id(conn, ids[:1])[0]
            repo, _perm = _Permissions(conn, caller).on(first.repository_id)
            where = f"{access.slug}/{repo.slug}" if repo is not None else access.slug
            raise repository_forbidden(Permission.ADMIN, where, "empty the trash")
    gone = set(trash.empty(reg, sorted(allowed), caller.name)) if allowed else set()
    results = [
        TrashEmptyResult(
            id=entry_id,
            status="emptied" if entry_id in gone else _empty_status(refused.get(entry_id)),
        )
        for entry_id in _unique(ids)
    ]
    # An image's entry takes its tag entries along: they are emptied too.
    return TrashEmptied(results=results, emptied=len(gone))


def _empty_status(refused: TrashRestoreResult | None) -> Literal["forbidden", "not_found"]:
    return "forbidden" if refused is not None and refused.status == "forbidden" else "not_found"


def _unique(ids: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(ids))
