"""Storage samples: stored / referenced / pending bytes of a workspace over time.

The storage history chart draws these points with the GC runs marked. A sample is
taken after a GC run (and just before and after an admin's "run now"), and the GC
worker samples every workspace periodically, so pushes and deletes show up too.
Sampling is throttled: a point is written only when the figures changed and the
previous one is at least ``min_interval_ms`` old, plus an hourly point so quiet
periods still draw a line.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from app.registry.db import schema as s
from app.registry.db.engine import Database
from app.registry.gc import storage

# A point sums every blob row of the workspace (0.4 s with 200,000 of them), so at
# most one per workspace this often, after GC runs as otherwise.
MIN_INTERVAL_MS = 10_000
HEARTBEAT_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Sample:
    at: int
    stored: int
    referenced: int
    pending: int
    in_trash: int = 0  # unreferenced, held for a restore (app.registry.trash)

    def same_figures(self, other: Sample) -> bool:
        return (self.stored, self.referenced, self.pending, self.in_trash) == (
            other.stored,
            other.referenced,
            other.pending,
            other.in_trash,
        )


def latest(conn: Connection, workspace_id: int) -> Sample | None:
    c = s.storage_samples.c
    row = conn.execute(
        select(c.at, c.stored, c.referenced, c.pending, c.in_trash)
        .where(c.workspace_id == workspace_id)
        .order_by(c.at.desc(), c.id.desc())
        .limit(1)
    ).first()
    return Sample(*(int(v) for v in row)) if row is not None else None


def current(conn: Connection, workspace_id: int, now: int) -> Sample:
    t = storage.totals(conn, workspace_id)
    return Sample(now, t.stored, t.referenced, t.pending, t.in_trash)


def insert_sample(conn: Connection, workspace_id: int, sample: Sample) -> None:
    conn.execute(
        insert(s.storage_samples).values(
            workspace_id=workspace_id,
            at=sample.at,
            stored=sample.stored,
            referenced=sample.referenced,
            pending=sample.pending,
            in_trash=sample.in_trash,
        )
    )


def due(last: Sample | None, now_sample: Sample, min_interval_ms: int, heartbeat_ms: int) -> bool:
    if last is None:
        return True
    age = now_sample.at - last.at
    if now_sample.same_figures(last):
        return age >= heartbeat_ms
    return age >= min_interval_ms


def record_if_changed(
    db: Database,
    workspace_id: int,
    now: int,
    *,
    min_interval_ms: int = MIN_INTERVAL_MS,
    heartbeat_ms: int = HEARTBEAT_MS,
) -> Sample | None:
    """Write a sample if one is due; returns it, or None when throttled."""
    # Sum in a read transaction so the SQLite write lock is held only for the insert;
    # and only when the throttle allows a point at all (the sum reads every blob row).
    with db.read() as conn:
        last = latest(conn, workspace_id)
        if last is not None and now - last.at < min_interval_ms:
            return None
        sample = current(conn, workspace_id, now)
    if not due(last, sample, min_interval_ms, heartbeat_ms):
        return None
    with db.write() as conn:
        insert_sample(conn, workspace_id, sample)
    return sample


def sample_all(db: Database, now: int, *, min_interval_ms: int = MIN_INTERVAL_MS) -> int:
    """Sample every workspace whose figures are due; returns how many were written."""
    with db.read() as conn:
        workspace_ids = list(
            conn.execute(select(s.workspaces.c.id).order_by(s.workspaces.c.id)).scalars()
        )
    written = 0
    for workspace_id in workspace_ids:
        if record_if_changed(db, workspace_id, now, min_interval_ms=min_interval_ms):
            written += 1
    return written


def history(conn: Connection, workspace_id: int, since: int | None = None) -> list[Sample]:
    """The samples of a workspace in time order (from ``since`` on, if given)."""
    c = s.storage_samples.c
    q = select(c.at, c.stored, c.referenced, c.pending, c.in_trash).where(
        c.workspace_id == workspace_id
    )
    if since is not None:
        q = q.where(c.at >= since)
    return [Sample(*(int(v) for v in row)) for row in conn.execute(q.order_by(c.at, c.id))]
