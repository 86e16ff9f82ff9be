"""Background chores of a serve process that are not garbage collection: expiring
stale upload sessions and their partial files (on object storage: their multipart
uploads and staged bytes, :func:`app.registry.s3_uploads.expire`), forgetting old
sign-in failures."""

from __future__ import annotations

import asyncio
import logging

from app.registry import throttle, uploads
from app.registry.blobstore import FileBlobStore
from app.registry.db.engine import Busy, now_ms
from app.registry.service import Registry

log = logging.getLogger(__name__)

UPLOAD_TTL_MS = 24 * 3600 * 1000
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
    # Files with no session (a crash between creating one and the other) go too.
    with reg.db.read() as conn:
        known = {sid for sid in store.upload_ids() if uploads.get_session(conn, sid)}
    for orphan in set(store.upload_ids()) - known:
        path = store.upload_path(orphan)
        try:
            age_ms = now_ms() - int(path.stat().st_mtime * 1000)
        except FileNotFoundError:
            continue
        if age_ms > ttl_ms:
            store.discard_upload(orphan)
    return len(stale)


def prune_logins(reg: Registry) -> None:
    """Forget old sign-in failures and addresses (app.registry.throttle)."""
    with reg.db.write() as conn:
        throttle.prune(conn, now_ms())


async def run(reg: Registry) -> None:
    ttl_ms = reg.upload_ttl_ms
    # A short TTL (tests, or an operator in a hurry) is checked often enough to hold.
    interval = min(INTERVAL_S, max(ttl_ms / 4000, 0.5))
    while True:
        try:
            await reg.run(expire_uploads, reg, ttl_ms)
            await reg.run(prune_logins, reg)
        except Busy:
            pass
        except Exception:  # keep the loop alive; the next round retries
            log.exception("upload expiry failed")
        await asyncio.sleep(interval)
