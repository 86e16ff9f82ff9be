"""``/me``, workspaces, projects and repositories, each with the counts the
navigator tree shows. Counts cover only what the caller may read."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement, Connection, distinct, func, select

from app.core.permissions import Permission
from app.registry import accounts
from app.registry.accounts import User
from app.registry.api.context import (
    Authenticated,
    Role,
    WorkspaceAccess,
    readable_in,
    workspace_access,
)
from app.registry.api.errors import documented
from app.registry.api.models import Me, Project, RepositoryItem, UserInfo, Workspace, WorkspaceRole
from app.registry.api.paging import DEFAULT_LIMIT, Cursor, Limit, Page, Sort, page_of
from app.registry.db import schema as s

router = APIRouter(responses=documented(400, 401, 404, 503))
BY_SLUG = Sort("slug", False)
BY_KEY = Sort("key", False)


def visible_workspaces(conn: Connection, user: User) -> list[tuple[int, str, str, Role]]:
    """(id, slug, name, role) of every workspace the user can see."""
    rows = conn.execute(
        select(s.workspaces.c.id, s.workspaces.c.slug, s.workspaces.c.name).order_by(
            s.workspaces.c.slug
        )
    ).all()
    if user.is_superuser:
        return [(r.id, r.slug, r.name, "admin") for r in rows]
    member = dict(
        conn.execute(
            select(s.workspace_members.c.workspace_id, s.workspace_members.c.is_admin).where(
                s.workspace_members.c.user_id == user.id
            )
        ).all()
    )
    guest = set(
        conn.execute(
            select(s.repositories.c.workspace_id)
            .join(s.grants, s.grants.c.repository_id == s.repositories.c.id)
            .where(s.grants.c.user_id == user.id, s.grants.c.permission >= int(Permission.READ))
        ).scalars()
    )
    out: list[tuple[int, str, str, Role]] = []
    for r in rows:
        if r.id in member:
            out.append((r.id, r.slug, r.name, "admin" if member[r.id] else "member"))
        elif r.id in guest:
            out.append((r.id, r.slug, r.name, "guest"))
    return out


def _repo_filter(readable: set[int] | None) -> list[ColumnElement[bool]]:
    return [] if readable is None else [s.repositories.c.id.in_(sorted(readable))]


def _workspace(conn: Connection, user: User, ws: WorkspaceAccess) -> Workspace:
    readable = readable_in(conn, user, ws)
    repo_ids = select(s.repositories.c.id).where(
        s.repositories.c.workspace_id == ws.id, *_repo_filter(readable)
    )
    repo_count = conn.execute(select(func.count()).select_from(repo_ids.subquery())).scalar_one()
    image_count = conn.execute(
        select(func.count()).where(
            s.images.c.repository_id.in_(repo_ids), s.images.c.trashed_at.is_(None)
        )
    ).scalar_one()
    if ws.role == "guest":
        projects = select(func.count(distinct(s.repositories.c.project_id))).where(
            s.repositories.c.id.in_(repo_ids)
        )
    else:
        projects = select(func.count()).where(s.projects.c.workspace_id == ws.id)
    return Workspace(
        slug=ws.slug,
        name=ws.name,
        role=ws.role,
        project_count=conn.execute(projects).scalar_one(),
        repository_count=repo_count,
        image_count=image_count,
    )


@router.get("/me", response_model=Me, summary="The caller and their workspaces")
def me(caller: Authenticated) -> Me:
    with caller.registry.db.read() as conn:
        spaces = visible_workspaces(conn, caller.user)
    return Me(
        user=UserInfo(name=caller.user.name, superuser=caller.user.is_superuser),
        workspaces=[
            WorkspaceRole(slug=slug, name=name, role=role) for _, slug, name, role in spaces
        ],
    )


@router.get("/workspaces", response_model=Page[Workspace], summary="Workspaces you can see")
def list_workspaces(
    caller: Authenticated, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[Workspace]:
    with caller.registry.db.read() as conn:
        spaces = [
            WorkspaceAccess(wid, slug, name, role)
            for wid, slug, name, role in visible_workspaces(conn, caller.user)
        ]
        page = page_of(spaces, lambda w: w.slug, limit, cursor, BY_SLUG)
        return Page[Workspace](
            items=[_workspace(conn, caller.user, w) for w in page.items],
            next_cursor=page.next_cursor,
            total=page.total,
        )


@router.get("/workspaces/{ws}", response_model=Workspace, summary="One workspace")
def get_workspace(caller: Authenticated, ws: str) -> Workspace:
    with caller.registry.db.read() as conn:
        return _workspace(conn, caller.user, workspace_access(conn, caller.user, ws))


@router.get(
    "/workspaces/{ws}/projects", response_model=Page[Project], summary="Projects of a workspace"
)
def list_projects(
    caller: Authenticated, ws: str, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[Project]:
    with caller.registry.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        readable = readable_in(conn, caller.user, access)
        repos = conn.execute(
            select(s.repositories.c.id, s.repositories.c.project_id).where(
                s.repositories.c.workspace_id == access.id, *_repo_filter(readable)
            )
        ).all()
        images: dict[int, int] = dict(
            conn.execute(
                select(s.images.c.repository_id, func.count())
                .where(s.images.c.workspace_id == access.id, s.images.c.trashed_at.is_(None))
                .group_by(s.images.c.repository_id)
            ).all()
        )
        repo_count: dict[int, int] = defaultdict(int)
        image_count: dict[int, int] = defaultdict(int)
        for r in repos:
            repo_count[r.project_id] += 1
            image_count[r.project_id] += images.get(r.id, 0)
        rows = conn.execute(
            select(s.projects.c.id, s.projects.c.key, s.projects.c.name).where(
                s.projects.c.workspace_id == access.id
            )
        ).all()
    projects = [
        Project(
            key=r.key,
            name=r.name,
            repository_count=repo_count[r.id],
            image_count=image_count[r.id],
        )
        for r in rows
        # A guest sees only the projects that hold a repository granted to them.
        if access.role != "guest" or repo_count[r.id]
    ]
    return page_of(projects, lambda p: p.key, limit, cursor, BY_KEY)


def repository_items(
    conn: Connection, user: User, access: WorkspaceAccess, project: str | None
) -> list[RepositoryItem]:
    readable = readable_in(conn, user, access)
    where = [s.repositories.c.workspace_id == access.id, *_repo_filter(readable)]
    if project is not None:
        where.append(s.repositories.c.project_id == accounts.project_id(conn, access.id, project))
    repos = conn.execute(
        select(s.repositories.c.id, s.repositories.c.slug, s.projects.c.key)
        .join(s.projects, s.projects.c.id == s.repositories.c.project_id)
        .where(*where)
    ).all()
    if not repos:
        return []
    ids = [r.id for r in repos]
    i = s.images.c
    images: dict[int, int] = dict(
        conn.execute(
            select(i.repository_id, func.count())
            .where(i.repository_id.in_(ids), i.trashed_at.is_(None))
            .group_by(i.repository_id)
        ).all()
    )
    tags: dict[int, int] = dict(
        conn.execute(
            select(i.repository_id, func.count())
            .select_from(s.tags)
            .join(s.images, i.id == s.tags.c.image_id)
            .where(i.repository_id.in_(ids), i.trashed_at.is_(None))
            .group_by(i.repository_id)
        ).all()
    )
    # Distinct blobs per repository: a layer two of its images share counts once.
    pairs = (
        select(i.repository_id.label("repository_id"), s.blob_usage.c.blob_id)
        .join(s.images, i.id == s.blob_usage.c.image_id)
        .where(i.repository_id.in_(ids))
        .distinct()
        .subquery()
    )
    sizes = dict(
        conn.execute(
            select(pairs.c.repository_id, func.sum(s.blobs.c.size))
            .join(s.blobs, s.blobs.c.id == pairs.c.blob_id)
            .group_by(pairs.c.repository_id)
        ).all()
    )
    if access.is_admin:
        perms = {rid: Permission.ADMIN for rid in ids}
    else:
        perms = {
            rid: Permission(p)
            for rid, p in conn.execute(
                select(s.grants.c.repository_id, s.grants.c.permission).where(
                    s.grants.c.user_id == user.id, s.grants.c.repository_id.in_(ids)
                )
            ).all()
        }
    return [
        RepositoryItem(
            id=r.id,
            slug=r.slug,
            project=r.key,
            image_count=images.get(r.id, 0),
            tag_count=tags.get(r.id, 0),
            size=int(sizes.get(r.id) or 0),
            permission=perms.get(r.id, Permission.NONE).label,  # type: ignore[arg-type]
        )
        for r in repos
    ]


@router.get(
    "/workspaces/{ws}/repositories",
    response_model=Page[RepositoryItem],
    summary="Repositories you may read, with your effective permission",
)
def list_repositories(
    caller: Authenticated,
    ws: str,
    project: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[RepositoryItem]:
    with caller.registry.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        items = repository_items(conn, caller.user, access, project)
    return page_of(items, lambda r: r.slug, limit, cursor, BY_SLUG)
