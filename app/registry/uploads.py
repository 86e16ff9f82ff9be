"""Upload sessions: the rows in the store, and running digests kept in memory.

Hashing the bytes as they arrive saves reading a whole layer again at the final
PUT. The running hash lives in this process only; after a restart, or when a
session's chunks reach another node, the hash is rebuilt from the upload file.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, delete, insert, select, update

from app.core.digests import Hasher, new_hasher
from app.registry.db import schema as s

HASH_CHUNK = 1 << 20


@dataclass
class UploadState:
    offset: int
    hasher: Hasher
    algorithm: str = "sha256"
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Set by a cancel: a chunk streaming in meanwhile stops and is refused.
    cancelled: bool = False


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
            self._states[session_id] = state
            return state

    def drop(self, session_id: str) -> None:
        with self._guard:
            self._states.pop(session_id, None)


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
class Session:
    id: str
    image_id: int
    workspace_id: int
    size: int


def create_session(conn: Connection, image_id: int, workspace_id: int, now: int) -> str:
    session_id = str(uuid.uuid4())
    conn.execute(
        insert(s.upload_sessions).values(
            id=session_id,
            image_id=image_id,
            workspace_id=workspace_id,
            size=0,
            created_at=now,
            updated_at=now,
        )
    )
    return session_id


def get_session(conn: Connection, session_id: str) -> Session | None:
    row = conn.execute(
        select(
            s.upload_sessions.c.id,
            s.upload_sessions.c.image_id,
            s.upload_sessions.c.workspace_id,
            s.upload_sessions.c.size,
        ).where(s.upload_sessions.c.id == session_id)
    ).first()
    return Session(*row) if row is not None else None


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
