"""Who is calling, and what they may see: the dependencies every endpoint starts from.

Visibility follows the permissions (DESIGN.md §1): a workspace is visible to its
members, to superusers and to anyone holding a grant in it (a *guest*); an image is
visible to whoever may read its repository. What the caller may not see answers 404,
exactly like what does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Path, Request, Security
from fastapi.openapi.models import HTTPBase, HTTPBearer
from fastapi.security.base import SecurityBase
from sqlalchemy import Connection, select

from app.core.permissions import Permission
from app.registry import accounts, content
from app.registry.accounts import Repository, User
from app.registry.api.errors import workspace_admin_forbidden
from app.registry.api.models import MAX_ID
from app.registry.auth import Identity
from app.registry.content import Image
from app.registry.db import schema as s
from app.registry.errors import NotFound, Unauthorized
from app.registry.oci.access import challenge, client_address
from app.registry.service import Registry

API_SCOPE = "api:berth:*"
Role = Literal["admin", "member", "guest"]


class _Documented(SecurityBase):
    """Declares an auth scheme in the OpenAPI document only: the header is checked by
    :func:`caller` with the same code as the OCI API (FastAPI's own HTTPBasic would
    reject UTF-8 passwords)."""

    def __init__(self, model: HTTPBase | HTTPBearer, name: str) -> None:
        self.model = model
        self.scheme_name = name

    async def __call__(self, request: Request) -> None:
        return None


_basic = _Documented(HTTPBase(scheme="basic"), "basic")
_bearer = _Documented(
    HTTPBearer(description=f"a token from /auth/token whose access includes {API_SCOPE}"),
    "bearer",
)


@dataclass(frozen=True, slots=True)
class Caller:
    registry: Registry
    identity: Identity

    @property
    def user(self) -> User:
        return self.identity.user

    @property
    def name(self) -> str:
        return self.identity.user.name


def caller(
    request: Request, _b: Annotated[None, Security(_basic)], _t: Annotated[None, Security(_bearer)]
) -> Caller:
    # A sync dependency: FastAPI runs it in a worker thread, where argon2 may block.
    reg: Registry = request.app.state.registry
    header = request.headers.get("authorization")
    identity = reg.auth.authenticate(header, client_address(request)) if header else None
    if identity is None:
        raise Unauthorized(
            "authentication required" if header is None else "invalid credentials",
            headers=challenge(request, API_SCOPE),
        )
    if not identity.token_api:
        raise Unauthorized(
            f"the token does not grant {API_SCOPE}",
            headers=challenge(request, API_SCOPE, "insufficient_scope"),
        )
    return Caller(reg, identity)


Authenticated = Annotated[Caller, Depends(caller)]
ImageId = Annotated[int, Path(ge=1, le=MAX_ID, description="an image id from a listing")]


# workspaces --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkspaceAccess:
    id: int
    slug: str
    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def role_in(conn: Connection, user: User, workspace_id: int) -> Role | None:
    """The caller's role, or None when the workspace is invisible to them."""
    if user.is_superuser:
        return "admin"
    member = conn.execute(
        select(s.workspace_members.c.is_admin).where(
            s.workspace_members.c.workspace_id == workspace_id,
            s.workspace_members.c.user_id == user.id,
        )
    ).first()
    if member is not None:
        return "admin" if member.is_admin else "member"
    guest = conn.execute(
        select(s.grants.c.repository_id)
        .join(s.repositories, s.repositories.c.id == s.grants.c.repository_id)
        .where(
            s.repositories.c.workspace_id == workspace_id,
            s.grants.c.user_id == user.id,
            s.grants.c.permission >= int(Permission.READ),
        )
        .limit(1)
    ).first()
    return "guest" if guest is not None else None


def workspace_access(conn: Connection, user: User, slug: str) -> WorkspaceAccess:
    row = conn.execute(
        select(s.workspaces.c.id, s.workspaces.c.slug, s.workspaces.c.name).where(
            s.workspaces.c.slug == slug
        )
    ).first()
    role = role_in(conn, user, row.id) if row is not None else None
    if row is None or role is None:
        raise NotFound(f"no workspace {slug!r}", detail={"workspace": slug})
    return WorkspaceAccess(row.id, row.slug, row.name, role)


def workspace_admin(conn: Connection, user: User, slug: str, doing: str) -> WorkspaceAccess:
    ws = workspace_access(conn, user, slug)
    if not ws.is_admin:
        raise workspace_admin_forbidden(slug, doing)
    return ws


def readable_in(conn: Connection, user: User, ws: WorkspaceAccess) -> set[int] | None:
    """Readable repositories of the workspace; None means every one."""
    if ws.is_admin:
        return None
    ids = accounts.readable_repository_ids(conn, user)
    assert ids is not None  # only superusers get None, and they are admins
    return ids


# images ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageAccess:
    image: Image
    repository: Repository
    permission: Permission

    @property
    def repository_label(self) -> str:
        return f"{self.repository.workspace}/{self.repository.slug}"


def image_access(conn: Connection, user: User, image_id: int) -> ImageAccess:
    image = content.image_by_id(conn, image_id)
    repo = accounts.repository_by_id(conn, image.repository_id) if image is not None else None
    perm = accounts.permission_on(conn, user, repo) if repo is not None else Permission.NONE
    if image is None or repo is None or perm < Permission.READ:
        raise NotFound(f"no image {image_id}", detail={"image_id": image_id})
    return ImageAccess(image, repo, perm)
