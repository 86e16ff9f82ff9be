"""The storage overview: a workspace's storage figures, GC status and storage history
read in one transaction, so that what a client shows together is one moment.

Read apart, a GC run landing between the reads pairs the figures from before it with
the run that changed them (the storage view showed pre-GC bytes beside the post-GC
GC panel). The separate endpoints stay for clients that need only one part.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.registry.api.context import Authenticated, readable_in, workspace_access
from app.registry.api.errors import documented
from app.registry.api.gc import read_gc_status, read_history
from app.registry.api.models import StorageOverview
from app.registry.api.storage import storage_figures
from app.registry.db.engine import now_ms

router = APIRouter(responses=documented(400, 401, 404, 503))


@router.get(
    "/workspaces/{ws}/storage/overview",
    response_model=StorageOverview,
    summary="Storage figures, GC status and history, read at one moment",
)
def storage_overview(caller: Authenticated, ws: str) -> StorageOverview:
    reg = caller.registry
    with reg.db.read() as conn:
        access = workspace_access(conn, caller.user, ws)
        figures = storage_figures(conn, readable_in(conn, caller.user, access), access.id)
        status = read_gc_status(conn, reg, access.id, now_ms())
        history = read_history(conn, access.id)
    return StorageOverview(storage=figures, gc=status, history=history)
