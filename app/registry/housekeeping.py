"""Background chores of a serve process that are not garbage collection: expiring
stale upload sessions and their partial files (on object storage: their multipart
uploads and staged bytes, :func:`app.registry.s3_uploads.expire`), forgetting the
state of sessions that ended on other nodes, forgetting old sign-in failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from app.registry import throttle, uploads
from app.registry.blobstore import FileBlobStore
from app.registry.db.engine import Busy, now_ms
from app.registry.service import Registry

log = logging.getLogger(__name__)

UPLOAD_TTL_MS = 24 * 3600 * 1000
# Upload data with no session is garbage at once (see uploads.orphans); the margin
# only spares files a process is still writing into after their session ended.
ORPHAN_UPLOAD_AGE_MS = 15 * 60 * 1000
INTERVAL_S = 60.0


def expire_uploads(reg: Registry, ttl_ms: int = UPLOAD_TTL_MS) -> int:
    """End sessions idle for longer than ``ttl_ms``; returns how many."""
    store = reg.store
    if not isinstance(store, FileBlobStore):
        from app.registry import s3_uploads

        return s3_uploads.expire(reg, ttl_ms)
    with reg.db.write() as conn:
        stale = uploads.expired_sessions(conn, now_ms() - ttl_ms)
        for session_id in stale:
            uploads.end_session(conn, session_id)
    for session_id in stale:
        store.discard_upload(session_id)
        reg.uploads.drop(session_id)
    # Data whose session is gone (a crash between ending one and removing the other).
    files = store.upload_files()
    with reg.db.read() as conn:
        orphans = uploads.orphans(conn, files, now_ms(), ORPHAN_UPLOAD_AGE_MS)
    for orphan in orphans:
        log.warning(
            "removing upload data %s (%d bytes): its session is gone",
            orphan.session_id,
            orphan.size,
        )
        store.discard_upload(orphan.session_id)
    return len(stale)


def forget_ended_sessions(reg: Registry) -> int:
    """Drop this process's state of upload sessions that ended, wherever they
    ended; returns how many. The node that ends a session (its PUT, a cancel, an
    image delete, the expiry) drops only its own state: behind a load balancer, the
    nodes that took the session's other chunks would keep theirs for good. Session
    ids are never reused, so a session whose row is gone is over."""
    held = reg.uploads.session_ids()
    if not held:
        return 0
    # Read after the ids were taken: a state is made only once its session's row is
    # committed, so every session held here that is still open is found.
    with reg.db.read() as conn:
        still_open = uploads.session_ids(conn, held)
    ended = [session_id for session_id in held if session_id not in still_open]
    for session_id in ended:
        # A chunk still streaming in here is refused when it lands (its row is gone).
        reg.uploads.cancel(session_id)
    return len(ended)


def prune_logins(reg: Registry) -> None:
    """Forget old sign-in failures and addresses (app.registry.throttle)."""
    with reg.db.write() as conn:
        throttle.prune(conn, now_ms())


async def run(reg: Registry) -> None:
    ttl_ms = reg.upload_ttl_ms
    # A short TTL (tests, or an operator in a hurry) is checked often enough to hold.
    interval = min(INTERVAL_S, max(ttl_ms / 4000, 0.5))
    while True:
        # Each chore on its own: one that fails (the database busy, the object
        # store refusing a listing) must not hold the others up.
        await _chore(reg, "forgetting ended uploads", forget_ended_sessions, reg)
        await _chore(reg, "upload expiry", expire_uploads, reg, ttl_ms)
        await _chore(reg, "pruning sign-in failures", prune_logins, reg)
        await asyncio.sleep(interval)


async def _chore(reg: Registry, what: str, fn: Callable[..., object], *args: object) -> None:
    try:
        await reg.run(fn, *args)
    except Busy:
        pass  # the next round retries
    except Exception:  # keep the loop alive; the next round retries
        log.exception("%s failed", what)
