"""Administration, mirroring the command line: users and workspaces (superusers);
members, projects, repositories and grants (workspace admins, inside their
workspace). Each change is one transaction and leaves an audit entry."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import Connection, insert, select

from app.core.permissions import Permission
from app.registry import accounts
from app.registry.api.context import Authenticated, Caller, WorkspaceAccess, workspace_admin
from app.registry.api.errors import documented, superuser_forbidden
from app.registry.api.models import (
    Grant,
    GrantChange,
    Member,
    Membership,
    NewProject,
    NewRepository,
    NewUser,
    NewWorkspace,
    Project,
    RepositoryItem,
    UserInfo,
    Workspace,
)
from app.registry.api.paging import DEFAULT_LIMIT, Cursor, Limit, Page, Sort, page_of
from app.registry.api.workspaces import repository_items
from app.registry.db import schema as s
from app.registry.db.engine import now_ms

router = APIRouter(responses=documented(400, 401, 403, 404, 409, 503))
BY_USER = Sort("user", False)


def _audit(
    conn: Connection,
    workspace_id: int | None,
    caller: Caller,
    action: str,
    target: str,
    detail: dict[str, Any],
) -> None:
    conn.execute(
        insert(s.audit_log).values(
            workspace_id=workspace_id,
            at=now_ms(),
            actor=caller.name,
            action=action,
            target=target,
            detail=json.dumps(detail, sort_keys=True),
        )
    )


def _superuser(caller: Caller, doing: str) -> None:
    if not caller.user.is_superuser:
        raise superuser_forbidden(doing)


@router.post("/users", status_code=201, response_model=UserInfo, summary="Create a user")
def create_user(caller: Authenticated, body: NewUser) -> UserInfo:
    _superuser(caller, "create users")
    with caller.registry.db.write() as conn:
        accounts.add_user(conn, body.name, body.password, superuser=body.superuser)
        _audit(conn, None, caller, "user.create", body.name, {"superuser": body.superuser})
    return UserInfo(name=body.name, superuser=body.superuser)


@router.post("/workspaces", status_code=201, response_model=Workspace, summary="Create a workspace")
def create_workspace(caller: Authenticated, body: NewWorkspace) -> Workspace:
    _superuser(caller, "create workspaces")
    with caller.registry.db.write() as conn:
        wid = accounts.add_workspace(conn, body.slug, body.name)
        _audit(conn, wid, caller, "workspace.create", body.slug, {"name": body.name or body.slug})
    return Workspace(
        slug=body.slug,
        name=body.name or body.slug,
        role="admin",
        project_count=0,
        repository_count=0,
        image_count=0,
    )


def _admin_of(conn: Connection, caller: Caller, ws: str, doing: str) -> WorkspaceAccess:
    return workspace_admin(conn, caller.user, ws, doing)


@router.get(
    "/workspaces/{ws}/members",
    response_model=Page[Member],
    summary="Members of a workspace (workspace admin)",
)
def list_members(
    caller: Authenticated, ws: str, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[Member]:
    with caller.registry.db.read() as conn:
        access = _admin_of(conn, caller, ws, "list members")
        rows = conn.execute(
            select(s.users.c.name, s.workspace_members.c.is_admin)
            .join(s.users, s.users.c.id == s.workspace_members.c.user_id)
            .where(s.workspace_members.c.workspace_id == access.id)
        ).all()
    members = [Member(user=r.name, admin=bool(r.is_admin)) for r in rows]
    return page_of(members, lambda m: m.user, limit, cursor, BY_USER)


@router.put(
    "/workspaces/{ws}/members/{user}",
    response_model=Member,
    summary="Add or update a member (workspace admin)",
)
def set_member(caller: Authenticated, ws: str, user: str, body: Membership) -> Member:
    with caller.registry.db.write() as conn:
        access = _admin_of(conn, caller, ws, "manage members")
        accounts.add_member(conn, ws, user, admin=body.admin)
        _audit(conn, access.id, caller, "member.set", f"{ws}:{user}", {"admin": body.admin})
    return Member(user=user, admin=body.admin)


@router.delete(
    "/workspaces/{ws}/members/{user}",
    status_code=204,
    response_class=Response,
    summary="Remove a member (workspace admin)",
)
def remove_member(caller: Authenticated, ws: str, user: str) -> Response:
    with caller.registry.db.write() as conn:
        access = _admin_of(conn, caller, ws, "manage members")
        accounts.remove_member(conn, ws, user)
        _audit(conn, access.id, caller, "member.remove", f"{ws}:{user}", {})
    return Response(status_code=204)


@router.post(
    "/workspaces/{ws}/projects",
    status_code=201,
    response_model=Project,
    summary="Create a project (workspace admin)",
)
def create_project(caller: Authenticated, ws: str, body: NewProject) -> Project:
    with caller.registry.db.write() as conn:
        access = _admin_of(conn, caller, ws, "create projects")
        accounts.add_project(conn, ws, body.key, body.name)
        _audit(conn, access.id, caller, "project.create", f"{ws}:{body.key}", {})
    return Project(key=body.key, name=body.name or body.key, repository_count=0, image_count=0)


@router.post(
    "/workspaces/{ws}/repositories",
    status_code=201,
    response_model=RepositoryItem,
    summary="Create a repository in a project (workspace admin)",
)
def create_repository(caller: Authenticated, ws: str, body: NewRepository) -> RepositoryItem:
    with caller.registry.db.write() as conn:
        access = _admin_of(conn, caller, ws, "create repositories")
        rid = accounts.add_repository(conn, ws, body.slug, body.project)
        _audit(
            conn,
            access.id,
            caller,
            "repository.create",
            f"{ws}/{body.slug}",
            {"project": body.project},
        )
        return next(
            r for r in repository_items(conn, caller.user, access, body.project) if r.id == rid
        )


@router.get(
    "/workspaces/{ws}/repositories/{slug}/grants",
    response_model=Page[Grant],
    summary="Who holds which permission on a repository (workspace admin)",
)
def list_grants(
    caller: Authenticated,
    ws: str,
    slug: str,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[Grant]:
    with caller.registry.db.read() as conn:
        _admin_of(conn, caller, ws, "manage grants")
        repo = accounts.get_repository(conn, ws, slug)
        rows = conn.execute(
            select(s.users.c.name, s.grants.c.permission)
            .join(s.users, s.users.c.id == s.grants.c.user_id)
            .where(s.grants.c.repository_id == repo.id)
        ).all()
    grants = [
        Grant(user=r.name, permission=Permission(r.permission).label)  # type: ignore[arg-type]
        for r in rows
    ]
    return page_of(grants, lambda g: g.user, limit, cursor, BY_USER)


@router.put(
    "/workspaces/{ws}/repositories/{slug}/grants/{user}",
    response_model=Grant,
    summary='Grant a permission on a repository ("none" revokes; workspace admin)',
)
def set_grant(caller: Authenticated, ws: str, slug: str, user: str, body: GrantChange) -> Grant:
    permission = Permission[body.permission.upper()]
    with caller.registry.db.write() as conn:
        access = _admin_of(conn, caller, ws, "manage grants")
        accounts.grant(conn, ws, slug, user, permission)
        _audit(
            conn,
            access.id,
            caller,
            "grant.set",
            f"{ws}/{slug}:{user}",
            {"permission": body.permission},
        )
    return Grant(user=user, permission=body.permission)
