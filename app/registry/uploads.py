"""Upload sessions: the rows in the store, and running digests kept in memory.

Hashing the bytes as they arrive saves reading a whole layer again at the final
PUT. The running hash lives in this process only; after a restart, or when a
session's chunks reach another node, the hash is rebuilt from the upload file
(filesystem store) or from the finished object (object storage, whose uploads keep
their multipart state here: :class:`S3State`, ``upload_parts``).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from app.core.digests import Hasher, new_hasher
from app.registry.blob_cache import Draft
from app.registry.db import schema as s
from app.registry.errors import RegistryError

HASH_CHUNK = 1 << 20
UPLOADS_PER_USER = 200
UPLOADS_PER_WORKSPACE = 2000


@dataclass
class UploadState:
    offset: int
    hasher: Hasher
    algorithm: str = "sha256"
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Set by a cancel: a chunk streaming in meanwhile stops and is refused.
    cancelled: bool = False
    # On object storage with a blob cache: the bytes this node received, while it
    # has seen every one of them (see app.registry.blob_cache).
    draft: Draft | None = None

    def forget_draft(self) -> None:
        # The housekeeping's thread may forget it at the same time: both may then
        # abandon the same draft, which is harmless (Draft.abandon is idempotent).
        draft, self.draft = self.draft, None
        if draft is not None:
            draft.abandon()

    def restart(self) -> None:
        """The upload starts again from its first byte (its first chunk, or one
        retried). In place, not a new state: a request on the session holds this
        state's lock, and the next one must wait for it."""
        self.offset = 0
        self.hasher = new_hasher("sha256")
        self.algorithm = "sha256"
        self.forget_draft()


class UploadStates:
    def __init__(self) -> None:
        self._states: dict[str, UploadState] = {}
        self._guard = threading.Lock()

    def get(self, session_id: str) -> UploadState:
        with self._guard:
            state = self._states.get(session_id)
            if state is None:
                state = UploadState(0, new_hasher("sha256"))
                state.offset = -1  # unknown: rebuild from the file when needed
                self._states[session_id] = state
            return state

    def start(self, session_id: str) -> UploadState:
        with self._guard:
            state = UploadState(0, new_hasher("sha256"))
            old = self._states.get(session_id)
            self._states[session_id] = state
        if old is not None:
            old.forget_draft()
        return state

    def session_ids(self) -> list[str]:
        """The sessions this process holds a state for."""
        with self._guard:
            return list(self._states)

    def drop(self, session_id: str) -> None:
        with self._guard:
            state = self._states.pop(session_id, None)
        if state is not None:
            state.forget_draft()

    def cancel(self, session_id: str) -> None:
        """The session ended under a chunk that may be streaming in: it stops."""
        with self._guard:
            state = self._states.pop(session_id, None)
        if state is not None:
            state.cancelled = True
            state.forget_draft()


def rehash(path: Path, algorithm: str, acknowledged: int | None = None) -> tuple[Hasher, int]:
    """The running digest and size of an upload, rebuilt from its file. With
    ``acknowledged`` (the size its session row records, written before each chunk's
    202), bytes past it are cut off first: a chunk the process died receiving was
    never acknowledged, and the client resumes from what it was told."""
    hasher = new_hasher(algorithm)
    size = 0
    with open(path, "r+b" if acknowledged is not None else "rb") as f:
        if acknowledged is not None and f.seek(0, 2) > acknowledged:
            f.truncate(acknowledged)
        f.seek(0)
        while chunk := f.read(HASH_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return hasher, size


@dataclass(frozen=True, slots=True)
class S3State:
    """Where an upload to object storage stands (see app.registry.s3_uploads)."""

    generation: str | None
    multipart_id: str | None
    staged: int
    version: int
    next_part: int
    staged_name: str | None = None

    def staged_object(self) -> str:
        """The name of the object holding the staged bytes, under the session's. A
        name starts with the version its chunk landed as; one that does not (or
        none) was left by a chunk a node without names landed after it (a rolling
        upgrade), which named its bytes by the version alone."""
        name = self.staged_name
        return (
            name if name is not None and name.startswith(f"{self.version}-") else str(self.version)
        )


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    image_id: int
    workspace_id: int
    size: int
    s3: S3State


@dataclass(frozen=True, slots=True)
class Part:
    number: int
    etag: str
    size: int


_c = s.upload_sessions.c
_SESSION_COLUMNS = (
    _c.id,
    _c.image_id,
    _c.workspace_id,
    _c.size,
    _c.generation,
    _c.multipart_id,
    _c.staged,
    _c.version,
    _c.next_part,
    _c.staged_name,
)


def _session(row: Any) -> Session:
    m = row._mapping
    return Session(
        str(m["id"]),
        int(m["image_id"]),
        int(m["workspace_id"]),
        int(m["size"]),
        S3State(
            m["generation"],
            m["multipart_id"],
            int(m["staged"]),
            int(m["version"]),
            int(m["next_part"]),
            m["staged_name"],
        ),
    )


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """Open sessions one user, and one workspace, may hold at once. A push opens a
    session per layer and a few layers at a time; abandoned sessions hold their place
    until they expire. (Soft on PostgreSQL: two nodes opening the last place at the
    same moment may both get it.)"""

    per_user: int = UPLOADS_PER_USER
    per_workspace: int = UPLOADS_PER_WORKSPACE


class TooManyUploads(RegistryError):
    status = 429
    code = "TOOMANYREQUESTS"


def create_session(
    conn: Connection,
    image_id: int,
    workspace_id: int,
    now: int,
    *,
    user_id: int | None = None,
    limits: UploadLimits | None = None,
) -> str:
    if limits is not None:
        _check_limits(conn, workspace_id, user_id, limits)
    session_id = str(uuid.uuid4())
    conn.execute(
        insert(s.upload_sessions).values(
            id=session_id,
            image_id=image_id,
            workspace_id=workspace_id,
            size=0,
            created_at=now,
            updated_at=now,
            user_id=user_id,
        )
    )
    return session_id


def get_session(conn: Connection, session_id: str, *, lock: bool = False) -> Session | None:
    q = select(*_SESSION_COLUMNS).where(_c.id == session_id)
    row = conn.execute(q.with_for_update() if lock else q).first()
    return _session(row) if row is not None else None


def record_progress(conn: Connection, session_id: str, size: int, now: int) -> bool:
    """Record an acknowledged size; False if the session is gone (cancelled)."""
    result = conn.execute(
        update(s.upload_sessions)
        .where(s.upload_sessions.c.id == session_id)
        .values(size=size, updated_at=now)
    )
    return bool(result.rowcount)


def end_session(conn: Connection, session_id: str) -> bool:
    """Remove a session's row; False if it was already gone."""
    result = conn.execute(delete(s.upload_sessions).where(s.upload_sessions.c.id == session_id))
    return bool(result.rowcount)


def expired_sessions(conn: Connection, before: int) -> list[str]:
    return list(
        conn.execute(
            select(s.upload_sessions.c.id).where(s.upload_sessions.c.updated_at < before)
        ).scalars()
    )


# object storage ---------------------------------------------------------------


def expired_s3_sessions(conn: Connection, before: int) -> list[Session]:
    """Sessions idle since before ``before``, locked (skipping any another node is
    ending right now)."""
    rows = conn.execute(
        select(*_SESSION_COLUMNS)
        .where(_c.updated_at < before)
        .order_by(_c.id)
        .with_for_update(skip_locked=True)
    )
    return [_session(r) for r in rows]


def begin_multipart(conn: Connection, session_id: str, generation: str, multipart_id: str) -> bool:
    """Record the session's multipart upload; False if another node began one first."""
    result = conn.execute(
        update(s.upload_sessions)
        .where(_c.id == session_id, _c.multipart_id.is_(None))
        .values(generation=generation, multipart_id=multipart_id)
    )
    return result.rowcount == 1


def reserve_part(conn: Connection, session_id: str) -> int | None:
    """A part number no other chunk of the session will use (None: the session is
    gone). Numbers a chunk reserved but never recorded are simply left out of the
    finished object."""
    return conn.execute(
        update(s.upload_sessions)
        .where(_c.id == session_id)
        .values(next_part=_c.next_part + 1)
        .returning(_c.next_part - 1)
    ).scalar()


def land_chunk(
    conn: Connection,
    session: Session,
    size: int,
    staged: int,
    staged_name: str | None,
    parts: list[Part],
    now: int,
) -> bool:
    """Record a chunk that landed, if the session is still at the version the chunk
    started from (False: another chunk landed first, this one does not count)."""
    result = conn.execute(
        update(s.upload_sessions)
        .where(_c.id == session.id, _c.version == session.s3.version)
        .values(
            size=size,
            staged=staged,
            staged_name=staged_name,
            version=_c.version + 1,
            updated_at=now,
        )
    )
    if result.rowcount != 1:
        return False
    if parts:
        conn.execute(
            insert(s.upload_parts),
            [
                {"session_id": session.id, "part_number": p.number, "etag": p.etag, "size": p.size}
                for p in parts
            ],
        )
    return True


def parts_of(conn: Connection, session_id: str) -> list[Part]:
    p = s.upload_parts.c
    return [
        Part(int(r.part_number), str(r.etag), int(r.size))
        for r in conn.execute(
            select(p.part_number, p.etag, p.size)
            .where(p.session_id == session_id)
            .order_by(p.part_number)
        )
    ]


def multipart_ids(conn: Connection) -> set[str]:
    """The multipart uploads sessions still hold."""
    return {
        str(v)
        for v in conn.execute(select(_c.multipart_id).where(_c.multipart_id.is_not(None))).scalars()
    }


def session_ids(conn: Connection, candidates: list[str]) -> set[str]:
    """Which of ``candidates`` are live sessions."""
    found: set[str] = set()
    ids = sorted(candidates)
    for start in range(0, len(ids), 500):  # a node may hold thousands: bounded INs
        found.update(
            conn.execute(select(_c.id).where(_c.id.in_(ids[start : start + 500]))).scalars()
        )
    return found


def _open_count(conn: Connection, where: object, limit: int) -> int:
    # Counting stops one past the limit: a user at it never costs a full count.
    capped = select(s.upload_sessions.c.id).where(where).limit(limit + 1).subquery()  # type: ignore[arg-type]
    return int(conn.execute(select(func.count()).select_from(capped)).scalar_one())


def _check_limits(
    conn: Connection, workspace_id: int, user_id: int | None, limits: UploadLimits
) -> None:
    c = s.upload_sessions.c
    if user_id is not None and _open_count(conn, c.user_id == user_id, limits.per_user) >= (
        limits.per_user
    ):
        raise TooManyUploads(
            f"you have {limits.per_user} uploads open, the most one user may; finish or "
            "cancel some (abandoned ones expire after a day)",
            detail={"limit": limits.per_user, "per": "user"},
        )
    if _open_count(conn, c.workspace_id == workspace_id, limits.per_workspace) >= (
        limits.per_workspace
    ):
        raise TooManyUploads(
            f"the workspace has {limits.per_workspace} uploads open, the most it may; "
            "finish or cancel some (abandoned ones expire after a day)",
            detail={"limit": limits.per_workspace, "per": "workspace"},
        )


def open_uploads(conn: Connection, workspace_id: int) -> tuple[int, int]:
    """(bytes received, sessions) of the workspace's open uploads: storage that holds
    no blob yet, shown with the storage figures."""
    c = s.upload_sessions.c
    total, count = conn.execute(
        select(func.coalesce(func.sum(c.size), 0), func.count()).where(
            c.workspace_id == workspace_id
        )
    ).one()
    return int(total), int(count)


def sessions_of_image(conn: Connection, image_id: int) -> list[Session]:
    """The upload sessions into an image, with what each holds in the store."""
    rows = conn.execute(select(*_SESSION_COLUMNS).where(_c.image_id == image_id))
    return [_session(row) for row in rows]


@dataclass(frozen=True, slots=True)
class OrphanUpload:
    """Upload data whose session is gone (cancelled, expired, its image deleted, or
    a crash between ending the session and removing the file)."""

    session_id: str
    size: int
    age_ms: int


def orphans(
    conn: Connection, files: dict[str, tuple[int, int]], now: int, min_age_ms: int
) -> list[OrphanUpload]:
    """The files among ``files`` (session id -> (size, mtime in ms)) that no session
    owns and that were last written more than ``min_age_ms`` ago. List the files
    *before* calling this: a session's row is written before its file, so a file
    listed first whose row is missing is garbage, never a session being born."""
    c = s.upload_sessions.c
    known = set(conn.execute(select(c.id).where(c.id.in_(sorted(files)))).scalars())
    return [
        OrphanUpload(sid, size, now - mtime)
        for sid, (size, mtime) in sorted(files.items())
        if sid not in known and now - mtime > min_age_ms
    ]
