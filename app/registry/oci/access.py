"""Who is calling, which image they name, and whether they may do what they ask.

Existence never leaks: a repository the caller cannot read answers exactly like
one that does not exist (401 with a challenge naming the scope). A caller who may
read but not write gets 403 DENIED naming the permission that is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from app.core.names import ImageName, InvalidName
from app.core.permissions import Permission
from app.registry import accounts, content
from app.registry.accounts import Repository
from app.registry.auth import SERVICE, Identity
from app.registry.content import Image
from app.registry.errors import Denied, NameInvalid, Unauthorized
from app.registry.service import Registry

ACTION_FOR = {Permission.READ: "pull", Permission.WRITE: "push"}


def registry_of(request: Request) -> Registry:
    reg: Registry = request.app.state.registry
    return reg


def realm(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}/auth/token"


def challenge(
    request: Request, scope: str | None = None, error: str | None = None
) -> dict[str, str]:
    reg = registry_of(request)
    if reg.challenge == "basic":
        return {"WWW-Authenticate": 'Basic realm="berth-registry"'}
    value = f'Bearer realm="{realm(request)}",service="{SERVICE}"'
    if scope:
        value += f',scope="{scope}"'
    if error:
        value += f',error="{error}"'
    return {"WWW-Authenticate": value}


def client_address(request: Request) -> str:
    """The client's address: the peer's, or the one a trusted proxy forwarded
    (uvicorn trusts X-Forwarded-For from FORWARDED_ALLOW_IPS, by default this host)."""
    return request.client.host if request.client is not None else ""


async def identify(request: Request, scope: str | None = None) -> Identity:
    reg = registry_of(request)
    header = request.headers.get("authorization")
    address = client_address(request)
    identity = await reg.run(reg.auth.authenticate, header, address) if header else None
    if identity is None:
        raise _unauthenticated(request, scope, header)
    return identity


def _unauthenticated(request: Request, scope: str | None, header: str | None) -> Unauthorized:
    return Unauthorized(
        "authentication required",
        headers=challenge(request, scope),
        detail=None if header is None else "invalid credentials",
    )


@dataclass(frozen=True, slots=True)
class Target:
    identity: Identity
    name: ImageName
    repo: Repository
    permission: Permission

    @property
    def actor(self) -> str:
        return self.identity.user.name


def _lookup(
    reg: Registry, header: str | None, address: str, name: ImageName | None
) -> tuple[Identity | None, Repository | None, Permission]:
    """Who is calling and what they hold on ``name``: one trip to a worker thread,
    as every request makes it."""
    identity = reg.auth.authenticate(header, address) if header else None
    if identity is None or name is None:
        return identity, None, Permission.NONE
    with reg.db.read() as conn:
        repo = accounts.find_repository(conn, name.workspace, name.repository)
        if repo is None:
            return identity, None, Permission.NONE
        return identity, repo, accounts.permission_on(conn, identity.user, repo)


async def authorize(request: Request, raw_name: str, need: Permission, action: str) -> Target:
    """Authenticate, parse the name and check ``need`` (with token ``action``)."""
    scope = f"repository:{raw_name}:{action}"
    try:
        name: ImageName | None = ImageName.parse(raw_name)
        invalid = None
    except InvalidName as exc:
        name, invalid = None, exc
    reg = registry_of(request)
    header = request.headers.get("authorization")
    identity, repo, perm = await reg.run(_lookup, reg, header, client_address(request), name)
    if identity is None:  # credentials come first, even before the name's syntax
        raise _unauthenticated(request, scope, header)
    if name is None:
        raise NameInvalid(str(invalid), detail={"name": raw_name})
    bearer = identity.token_access is not None
    if repo is None or perm < Permission.READ:
        raise Unauthorized(
            f"no access to {raw_name}",
            headers=challenge(request, scope, "insufficient_scope" if bearer else None),
            detail=[{"Type": "repository", "Name": raw_name, "Action": action}],
        )
    if perm < need:
        raise Denied(
            f"{need.label} permission on {name.workspace}/{name.repository} is required "
            f"(you have {perm.label})",
            detail={"required": need.label, "repository": f"{name.workspace}/{name.repository}"},
        )
    if not identity.token_allows("repository", raw_name, action):
        raise Unauthorized(
            f"the token does not grant {action} on {raw_name}",
            headers=challenge(request, scope, "insufficient_scope"),
            detail=[{"Type": "repository", "Name": raw_name, "Action": action}],
        )
    return Target(identity, name, repo, perm)


def find_image(reg: Registry, target: Target) -> Image | None:
    with reg.db.read() as conn:
        return content.find_image(conn, target.repo, target.name.image)
