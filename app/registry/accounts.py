"""Users, workspaces, projects, repositories, grants, and permission lookup.

Every function takes an open connection; the caller owns the transaction, so the
command line and the management API can combine steps and write all or nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Row, Select, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core import names
from app.core.permissions import Permission, effective_permission
from app.registry.db import schema as s
from app.registry.db.engine import inserted_id, now_ms
from app.registry.errors import Conflict, NotFound, RegistryError

# argon2id (memory-hard); 64 MiB and 2 passes is OWASP's recommended floor.
_hasher = PasswordHasher(time_cost=2, memory_cost=65536, parallelism=1)


class InvalidArgument(RegistryError):
    status = 400
    code = "INVALID_ARGUMENT"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    is_superuser: bool
    # The credential stamp and access version this record was read with (see
    # schema.users).
    stamp: str = ""
    access_version: int = 0


def new_stamp() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Repository:
    id: int
    workspace_id: int
    workspace: str
    project_id: int
    project_key: str
    slug: str


def _check(fn: object, value: str, *args: str) -> None:
    try:
        fn(value, *args)  # type: ignore[operator]
    except names.InvalidName as exc:
        raise InvalidArgument(str(exc)) from exc


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def add_user(conn: Connection, name: str, password: str, *, superuser: bool = False) -> int:
    _check(names.validate_username, name)
    if len(password) < 8:
        raise InvalidArgument("password must have at least 8 characters")
    try:
        result = conn.execute(
            insert(s.users).values(
                name=name,
                password_hash=hash_password(password),
                is_superuser=superuser,
                created_at=now_ms(),
                credential_stamp=new_stamp(),
            )
        )
    except IntegrityError:
        raise Conflict(f"user {name!r} already exists", code="ALREADY_EXISTS") from None
    return inserted_id(result)


def set_password(conn: Connection, name: str, password: str) -> None:
    if len(password) < 8:
        raise InvalidArgument("password must have at least 8 characters")
    # A new stamp: logins remembered and tokens issued under the old password end.
    result = conn.execute(
        update(s.users)
        .where(s.users.c.name == name)
        .values(password_hash=hash_password(password), credential_stamp=new_stamp())
    )
    if result.rowcount == 0:
        raise NotFound(f"no user {name!r}")


def remove_user(conn: Connection, name: str) -> None:
    """Remove a user with their memberships and grants (the audit log keeps their
    name). Their remembered logins and tokens fail with their row."""
    result = conn.execute(delete(s.users).where(s.users.c.name == name))
    if result.rowcount == 0:
        raise NotFound(f"no user {name!r}")


_USER_COLUMNS = (
    s.users.c.id,
    s.users.c.name,
    s.users.c.is_superuser,
    s.users.c.credential_stamp,
    s.users.c.access_version,
)


def _user(row: Any) -> User:
    return User(
        row.id, row.name, bool(row.is_superuser), row.credential_stamp, int(row.access_version)
    )


def _access_changed(conn: Connection, user_id: int) -> None:
    """In the transaction that changes a membership or grant (see schema.users)."""
    conn.execute(
        update(s.users)
        .where(s.users.c.id == user_id)
        .values(access_version=s.users.c.access_version + 1)
    )


def get_user(conn: Connection, name: str) -> User:
    row = conn.execute(select(*_USER_COLUMNS).where(s.users.c.name == name)).first()
    if row is None:
        raise NotFound(f"no user {name!r}")
    return _user(row)


def find_user(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(*_USER_COLUMNS).where(s.users.c.name == name)).first()
    return _user(row) if row is not None else None


def user_password_hash(conn: Connection, name: str) -> tuple[User, str] | None:
    row = conn.execute(
        select(*_USER_COLUMNS, s.users.c.password_hash).where(s.users.c.name == name)
    ).first()
    if row is None:
        return None
    return _user(row), row.password_hash


def add_workspace(conn: Connection, slug: str, name: str | None = None) -> int:
    _check(names.validate_slug, slug, "workspace slug")
    try:
        result = conn.execute(
            insert(s.workspaces).values(slug=slug, name=name or slug, created_at=now_ms())
        )
    except IntegrityError:
        raise Conflict(f"workspace {slug!r} already exists", code="ALREADY_EXISTS") from None
    return inserted_id(result)


def workspace_id(conn: Connection, slug: str) -> int:
    wid = conn.execute(select(s.workspaces.c.id).where(s.workspaces.c.slug == slug)).scalar()
    if wid is None:
        raise NotFound(f"no workspace {slug!r}")
    return int(wid)


def add_member(conn: Connection, workspace: str, user: str, *, admin: bool = False) -> None:
    wid = workspace_id(conn, workspace)
    uid = get_user(conn, user).id
    _access_changed(conn, uid)
    existing = conn.execute(
        select(s.workspace_members.c.is_admin).where(
            s.workspace_members.c.workspace_id == wid, s.workspace_members.c.user_id == uid
        )
    ).first()
    if existing is None:
        conn.execute(
            insert(s.workspace_members).values(workspace_id=wid, user_id=uid, is_admin=admin)
        )
    else:
        conn.execute(
            update(s.workspace_members)
            .where(s.workspace_members.c.workspace_id == wid, s.workspace_members.c.user_id == uid)
            .values(is_admin=admin)
        )


def remove_member(conn: Connection, workspace: str, user: str) -> None:
    wid = workspace_id(conn, workspace)
    uid = get_user(conn, user).id
    result = conn.execute(
        delete(s.workspace_members).where(
            s.workspace_members.c.workspace_id == wid, s.workspace_members.c.user_id == uid
        )
    )
    if result.rowcount == 0:
        raise NotFound(f"{user!r} is not a member of {workspace!r}")
    _access_changed(conn, uid)


def add_project(conn: Connection, workspace: str, key: str, name: str | None = None) -> int:
    _check(names.validate_project_key, key)
    wid = workspace_id(conn, workspace)
    try:
        result = conn.execute(
            insert(s.projects).values(
                workspace_id=wid, key=key, name=name or key, created_at=now_ms()
            )
        )
    except IntegrityError:
        raise Conflict(
            f"project {key!r} already exists in {workspace!r}", code="ALREADY_EXISTS"
        ) from None
    return inserted_id(result)


def project_id(conn: Connection, workspace_id_: int, key: str) -> int:
    pid = conn.execute(
        select(s.projects.c.id).where(
            s.projects.c.workspace_id == workspace_id_, s.projects.c.key == key
        )
    ).scalar()
    if pid is None:
        raise NotFound(f"no project {key!r}")
    return int(pid)


def add_repository(conn: Connection, workspace: str, slug: str, project: str) -> int:
    _check(names.validate_slug, slug, "repository slug")
    wid = workspace_id(conn, workspace)
    pid = project_id(conn, wid, project)
    try:
        result = conn.execute(
            insert(s.repositories).values(
                workspace_id=wid, project_id=pid, slug=slug, created_at=now_ms()
            )
        )
    except IntegrityError:
        raise Conflict(
            f"repository {slug!r} already exists in {workspace!r}", code="ALREADY_EXISTS"
        ) from None
    return inserted_id(result)


_REPO_COLUMNS = (
    s.repositories.c.id,
    s.repositories.c.workspace_id,
    s.workspaces.c.slug.label("workspace"),
    s.repositories.c.project_id,
    s.projects.c.key.label("project_key"),
    s.repositories.c.slug,
)


def _repo_query() -> Select[Any]:
    return (
        select(*_REPO_COLUMNS)
        .select_from(s.repositories)
        .join(s.workspaces, s.workspaces.c.id == s.repositories.c.workspace_id)
        .join(s.projects, s.projects.c.id == s.repositories.c.project_id)
    )


def _repository(row: Row[Any]) -> Repository:
    return Repository(
        row.id, row.workspace_id, row.workspace, row.project_id, row.project_key, row.slug
    )


def find_repository(conn: Connection, workspace: str, slug: str) -> Repository | None:
    row = conn.execute(
        _repo_query().where(s.workspaces.c.slug == workspace, s.repositories.c.slug == slug)
    ).first()
    return _repository(row) if row is not None else None


def get_repository(conn: Connection, workspace: str, slug: str) -> Repository:
    repo = find_repository(conn, workspace, slug)
    if repo is None:
        raise NotFound(f"no repository {workspace}/{slug}")
    return repo


def repository_by_id(conn: Connection, repository_id: int) -> Repository | None:
    row = conn.execute(_repo_query().where(s.repositories.c.id == repository_id)).first()
    return _repository(row) if row is not None else None


def grant(conn: Connection, workspace: str, repo_slug: str, user: str, perm: Permission) -> None:
    repo = get_repository(conn, workspace, repo_slug)
    uid = get_user(conn, user).id
    _access_changed(conn, uid)
    where = and_(s.grants.c.repository_id == repo.id, s.grants.c.user_id == uid)
    if perm == Permission.NONE:
        conn.execute(delete(s.grants).where(where))
        return
    if conn.execute(select(func.count()).select_from(s.grants).where(where)).scalar():
        conn.execute(update(s.grants).where(where).values(permission=int(perm)))
    else:
        conn.execute(
            insert(s.grants).values(repository_id=repo.id, user_id=uid, permission=int(perm))
        )


def is_workspace_admin(conn: Connection, user: User, workspace_id_: int) -> bool:
    if user.is_superuser:
        return True
    return bool(
        conn.execute(
            select(s.workspace_members.c.is_admin).where(
                s.workspace_members.c.workspace_id == workspace_id_,
                s.workspace_members.c.user_id == user.id,
            )
        ).scalar()
    )


def is_workspace_member(conn: Connection, user: User, workspace_id_: int) -> bool:
    if user.is_superuser:
        return True
    return (
        conn.execute(
            select(s.workspace_members.c.user_id).where(
                s.workspace_members.c.workspace_id == workspace_id_,
                s.workspace_members.c.user_id == user.id,
            )
        ).first()
        is not None
    )


def permission_on(conn: Connection, user: User, repo: Repository) -> Permission:
    if user.is_superuser:
        return Permission.ADMIN
    admin = conn.execute(
        select(s.workspace_members.c.is_admin).where(
            s.workspace_members.c.workspace_id == repo.workspace_id,
            s.workspace_members.c.user_id == user.id,
        )
    ).scalar()
    granted = conn.execute(
        select(s.grants.c.permission).where(
            s.grants.c.repository_id == repo.id, s.grants.c.user_id == user.id
        )
    ).scalar()
    return effective_permission(
        superuser=False,
        workspace_admin=bool(admin),
        granted=Permission(granted) if granted is not None else None,
    )


def readable_repository_ids(conn: Connection, user: User) -> set[int] | None:
    """Repositories the user may read; ``None`` means all (superuser)."""
    if user.is_superuser:
        return None
    admin_ws = select(s.workspace_members.c.workspace_id).where(
        s.workspace_members.c.user_id == user.id, s.workspace_members.c.is_admin.is_(True)
    )
    ids = set(
        conn.execute(
            select(s.repositories.c.id).where(s.repositories.c.workspace_id.in_(admin_ws))
        ).scalars()
    )
    ids |= set(
        conn.execute(
            select(s.grants.c.repository_id).where(
                s.grants.c.user_id == user.id, s.grants.c.permission >= int(Permission.READ)
            )
        ).scalars()
    )
    return ids
