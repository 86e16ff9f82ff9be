"""GC status of a workspace, "run now", and the storage history chart's data.

The GC worker (app.registry.gc.collector) and the sampler (app.registry.gc.samples) write
``gc_runs`` and ``storage_samples``; this module only reads them, plus the review
queues for what is waiting.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import Connection, case, func, select

from app.registry.accounts import InvalidArgument
from app.registry.api.context import Authenticated, workspace_access, workspace_admin
from app.registry.api.errors import documented
from app.registry.api.models import GcRun, GcStatus, History, Sample
from app.registry.api.times import iso, iso_or_none, parse_iso
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.gc import collector, storage
from app.registry.service import Registry

router = APIRouter(responses=documented(400, 401, 404, 503))

RECENT_RUNS = 20
MAX_SAMPLES = 1000
MAX_RUNS = 1000


def gc_run(row: Any) -> GcRun:
    return GcRun(
        id=row.id,
        triggers=[t for t in row.triggers.split(",") if t],
        started_at=iso(row.started_at),
        duration_ms=row.duration_ms,
        manifests_deleted=row.manifests_deleted,
        blobs_deleted=row.blobs_deleted,
        bytes_freed=row.bytes_freed,
    )


def _runs(conn: Connection, workspace_id: int, since: int | None, limit: int) -> list[GcRun]:
    r = s.gc_runs.c
    q = select(s.gc_runs).where(r.workspace_id == workspace_id)
    if since is not None:
        q = q.where(r.started_at >= since)
    rows = conn.execute(q.order_by(r.started_at.desc(), r.id.desc()).limit(limit)).all()
    return [gc_run(row) for row in rows]


def _queue(conn: Connection, workspace_id: int, now: int, table: Any) -> tuple[int, int, Any]:
    c = table.c
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((c.review_after <= now, 1), else_=0)), 0),
            func.min(c.review_after),
        ).where(c.workspace_id == workspace_id)
    ).one()
    return int(row[0]), int(row[1]), row[2]


@router.get("/workspaces/{ws}/gc", response_model=GcStatus, summary="Garbage collection status")
def gc_status(caller: Authenticated, ws: str) -> GcStatus:
    reg = caller.registry
    with reg.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        return read_gc_status(conn, reg, access.id, now_ms())


def read_gc_status(conn: Connection, reg: Registry, workspace_id: int, now: int) -> GcStatus:
    manifests = _queue(conn, workspace_id, now, s.gc_manifest_reviews)
    blobs = _queue(conn, workspace_id, now, s.gc_blob_reviews)
    pending = storage.totals(conn, workspace_id).pending
    runs = _runs(conn, workspace_id, None, RECENT_RUNS)
    upcoming = [t for t in (manifests[2], blobs[2]) if t is not None]
    return GcStatus(
        queued_manifests=manifests[0],
        queued_blobs=blobs[0],
        due_manifests=manifests[1],
        due_blobs=blobs[1],
        pending_bytes=pending,
        next_review_at=iso_or_none(min(upcoming) if upcoming else None),
        review_delay_s=reg.timing.review_delay / 1000,
        upload_grace_s=reg.timing.upload_grace / 1000,
        trash_retention_s=reg.timing.trash_retention / 1000,
        recent_runs=runs,
    )


@router.post(
    "/workspaces/{ws}/gc/run",
    response_model=GcRun,
    responses=documented(403),
    summary="Review everything queued now (workspace admin); grace and race rules apply",
)
def gc_run_now(caller: Authenticated, ws: str) -> GcRun:
    reg = caller.registry
    with reg.db.read() as conn:
        access = workspace_admin(conn, caller.user, ws, "run garbage collection")
    run = collector.run_now(reg, access.id)
    with reg.db.read() as conn:
        row = conn.execute(select(s.gc_runs).where(s.gc_runs.c.id == run.id)).one()
    return gc_run(row)


@router.get(
    "/workspaces/{ws}/storage/history",
    response_model=History,
    summary="Stored, referenced and pending bytes over time, with the GC runs",
)
def history(
    caller: Authenticated,
    ws: str,
    since: Annotated[
        str | None,
        Query(
            max_length=64,
            description="from this time on (ISO 8601); default: all",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
) -> History:
    try:
        since_ms = parse_iso(since) if since is not None else None
    except (ValueError, OverflowError):
        raise InvalidArgument(f"since: {since!r} is not an ISO 8601 time") from None
    with caller.registry.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        return read_history(conn, access.id, since_ms)


def read_history(conn: Connection, workspace_id: int, since_ms: int | None = None) -> History:
    c = s.storage_samples.c
    q = select(c.at, c.stored, c.referenced, c.pending, c.in_trash).where(
        c.workspace_id == workspace_id
    )
    if since_ms is not None:
        q = q.where(c.at >= since_ms)
    rows = conn.execute(q.order_by(c.at, c.id)).all()
    runs = _runs(conn, workspace_id, since_ms, MAX_RUNS)
    # A chart needs no more points than it has pixels; keep the newest point exactly.
    if len(rows) > MAX_SAMPLES:
        step = len(rows) / MAX_SAMPLES
        rows = [rows[int(k * step)] for k in range(MAX_SAMPLES - 1)] + [rows[-1]]
    return History(
        samples=[
            Sample(
                at=iso(r.at),
                stored=r.stored,
                referenced=r.referenced,
                pending=r.pending,
                in_trash=r.in_trash,
            )
            for r in rows
        ],
        gc_runs=list(reversed(runs)),
    )
