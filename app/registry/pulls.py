"""Pull tracking: the last time each manifest and each tag was pulled, written in
batches off the hot path.

A manifest GET/HEAD (by tag or by digest; blob GETs do not count) only notes the
pull in this process's memory (:class:`PullLog`, a dict update under a lock). Every
``flush_s`` seconds (default 5) the serve process writes what it noted in one short
write transaction: ``manifests.last_pulled_at`` for every manifest pulled, and
``tags.last_pulled_at`` for every tag pulled by name, each only moving forward
(``WHERE last_pulled_at < new``). So a burst of 10,000 pulls of one tag costs one
row update, not 10,000 transactions, and the pull itself waits for nothing.

Several nodes: each keeps its own log and flushes it to the shared database; since
the updates only move times forward, the order in which nodes flush does not matter
and no coordination is needed. A tag's time is written only while the tag still
points at the manifest that was pulled (a push that moves the tag clears its time).

What a crash loses: the pulls noted since the last flush (at most ``flush_s``
seconds of them) on the node that died (kill -9). A clean stop (SIGTERM) flushes.
A flush that fails (busy database) keeps its batch and merges it into the next one.
Rows are updated in id order, manifests before tags, as every writer locks content
rows (DESIGN.md, race safety rule 5).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, bindparam, or_, select, update

from app.registry.db import schema as s
from app.registry.db.engine import Busy, Database

log = logging.getLogger(__name__)

FLUSH_S = 5.0
# The setting that records when pull tracking began (migration 0006).
TRACKED_SINCE_KEY = "pulls_tracked_since"
K = TypeVar("K")


@dataclass(slots=True)
class PullBatch:
    manifests: dict[int, int] = field(default_factory=dict)  # manifest id -> ms
    tags: dict[tuple[int, int], int] = field(default_factory=dict)  # (tag, manifest) -> ms

    def __len__(self) -> int:
        return len(self.manifests) + len(self.tags)


def _merge(into: dict[K, int], other: dict[K, int]) -> None:
    for key, at in other.items():
        if into.get(key, -1) < at:
            into[key] = at


class PullLog:
    """Pulls this process saw since its last flush."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batch = PullBatch()

    def record(self, manifest_id: int, tag_id: int | None, at: int) -> None:
        with self._lock:
            batch = self._batch
            if batch.manifests.get(manifest_id, -1) < at:
                batch.manifests[manifest_id] = at
            if tag_id is not None:
                key = (tag_id, manifest_id)
                if batch.tags.get(key, -1) < at:
                    batch.tags[key] = at

    def take(self) -> PullBatch:
        with self._lock:
            batch, self._batch = self._batch, PullBatch()
        return batch

    def put_back(self, batch: PullBatch) -> None:
        """A batch that could not be written goes into the next one."""
        with self._lock:
            _merge(self._batch.manifests, batch.manifests)
            _merge(self._batch.tags, batch.tags)

    def __len__(self) -> int:
        with self._lock:
            return len(self._batch)


_MANIFEST_UPDATE = (
    update(s.manifests)
    .where(
        s.manifests.c.id == bindparam("mid"),
        or_(s.manifests.c.last_pulled_at.is_(None), s.manifests.c.last_pulled_at < bindparam("at")),
    )
    .values(last_pulled_at=bindparam("at"))
)
_TAG_UPDATE = (
    update(s.tags)
    .where(
        s.tags.c.id == bindparam("tid"),
        s.tags.c.manifest_id == bindparam("mid"),
        or_(s.tags.c.last_pulled_at.is_(None), s.tags.c.last_pulled_at < bindparam("at")),
    )
    .values(last_pulled_at=bindparam("at"))
)


def write_batch(conn: Connection, batch: PullBatch) -> None:
    if batch.manifests:
        conn.execute(
            _MANIFEST_UPDATE,
            [{"mid": mid, "at": at} for mid, at in sorted(batch.manifests.items())],
        )
    if batch.tags:
        conn.execute(
            _TAG_UPDATE,
            [{"tid": tid, "mid": mid, "at": at} for (tid, mid), at in sorted(batch.tags.items())],
        )


def flush(db: Database, pulls: PullLog) -> int:
    """Write what ``pulls`` noted; returns how many rows were due. On failure the
    batch goes back into the log and the error propagates."""
    batch = pulls.take()
    if not batch:
        return 0
    try:
        with db.write() as conn:
            write_batch(conn, batch)
    except BaseException:
        pulls.put_back(batch)
        raise
    return len(batch)


async def run(db: Database, pulls: PullLog, flush_s: float = FLUSH_S) -> None:
    """Flush every ``flush_s`` seconds until cancelled, then once more."""
    try:
        while True:
            await asyncio.sleep(flush_s)
            try:
                await asyncio.to_thread(flush, db, pulls)
            except Busy:
                pass  # kept for the next round
            except Exception:
                log.exception("writing pull times failed; kept for the next round")
    finally:
        try:
            await asyncio.shield(asyncio.to_thread(flush, db, pulls))
        except Exception:
            log.exception("writing pull times at shutdown failed")


def tracked_since(conn: Connection) -> int:
    """When pull tracking began (ms); 0 if unknown."""
    value = conn.execute(
        select(s.settings.c.value).where(s.settings.c.key == TRACKED_SINCE_KEY)
    ).scalar()
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0
