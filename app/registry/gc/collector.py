"""Online garbage collection: passes over the review queues of a workspace, and the
record of each run.

Events queue reviews in their own transaction (app.registry.gc.reviews); a pass takes
the due ones, manifests first (deleting one queues its blobs, children and
referrers, reviewed in the same pass), in batches of short write transactions
(app.registry.gc.review). A deleted blob's stored object is removed only after its
row's delete committed: a crash in between leaks bytes (``fsck --repair`` reclaims
them) but never loses referenced content. A lock wait past the timeout surfaces as
:class:`Busy`; the items stay queued for the next pass. A batch that fails
otherwise is retried item by item, and an item that still fails backs off
(``attempts``) and is retried later.

A run worth recording (it deleted something, or handled a deletion's review) goes
to ``gc_runs`` and the audit log and is announced on the event bus; ``run_now`` is
the admin's "run GC now", always recorded.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, func, insert, select, update

from app.core.units import format_bytes
from app.registry import trash
from app.registry.blobstore import ObjectRef, StoreUnavailable
from app.registry.db import schema as s
from app.registry.db.engine import Busy, inserted_id, now_ms
from app.registry.errors import Conflict
from app.registry.gc import reviews, samples
from app.registry.gc.review import (
    Batch,
    Outcome,
    remove_empty_images,
    review_blobs,
    review_manifests,
)
from app.registry.service import Registry

log = logging.getLogger(__name__)

Clock = Callable[[], int]
ShouldStop = Callable[[], bool]

# A failing review is retried after 2 s, 4 s, 8 s ... at most an hour later.
BACKOFF_BASE_MS = 2_000
BACKOFF_MAX_MS = 3_600_000
# Manifest deletions queue more work (blobs, children, referrers); a pass follows
# that chain this many rounds at most and leaves the rest to the next pass.
MAX_ROUNDS = 16
# Items reviewed in one transaction: a few statements each batch, whatever its size,
# and the write lock is held for milliseconds.
BATCH = 200
# The trigger recorded for a run an admin asked for.
MANUAL = "manual"
# Reviews every push queues; a run that only kept such items is not recorded.
ROUTINE = frozenset({reviews.BLOB_UPLOAD, reviews.MANIFEST_BY_DIGEST})
# A settings row that holds collection (its value says why): set while ``demo`` writes
# months of history on its own clock into a registry that already serves. A pass on
# the real clock would find everything of that history past its grace, collect it
# under the seeder's feet (a blob between its upload and its manifest) and record
# runs and samples at the wrong time.
HOLD_KEY = "gc_hold"


@dataclass(frozen=True, slots=True)
class GcRun:
    """One recorded run over one workspace (a row of ``gc_runs``)."""

    id: int
    workspace_id: int
    triggers: list[str]
    started_at: int  # ms since the epoch
    duration_ms: int
    manifests_deleted: int
    blobs_deleted: int
    bytes_freed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workspace_id": self.workspace_id,
            "triggers": list(self.triggers),
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
            "manifests_deleted": self.manifests_deleted,
            "blobs_deleted": self.blobs_deleted,
            "bytes_freed": self.bytes_freed,
        }


@dataclass(slots=True)
class Tally:
    """What one pass over a workspace did."""

    started_at: int
    triggers: set[str] = field(default_factory=set)
    reviewed: int = 0
    deferred: int = 0
    failed: int = 0
    manifests_deleted: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    images_removed: int = 0
    candidate_images: set[int] = field(default_factory=set)

    @property
    def worth_recording(self) -> bool:
        """Something was deleted, or a deletion's review was handled. Routine reviews
        (every upload's and digest push's, which almost always keep) that freed
        nothing would only bury the history in empty runs."""
        if self.manifests_deleted or self.blobs_deleted or self.images_removed:
            return True
        return bool(self.triggers - ROUTINE)

    def count(self, batch: Batch) -> None:
        for _item, event, outcome in batch.reviewed:
            self.reviewed += 1
            self.triggers.add(event)
            if outcome is Outcome.DEFERRED:
                self.deferred += 1
        self.manifests_deleted += batch.manifests_deleted
        self.blobs_deleted += len(batch.freed)
        self.bytes_freed += sum(f.size for f in batch.freed)
        self.candidate_images |= batch.images


# passes ----------------------------------------------------------------------


def _backoff(reg: Registry, table: Table, key: str, item_id: int, now: int) -> None:
    with reg.db.write() as conn:
        attempts = conn.execute(
            select(table.c.attempts).where(table.c[key] == item_id).with_for_update()
        ).scalar()
        if attempts is None:
            return
        delay = min(BACKOFF_BASE_MS << min(int(attempts), 20), BACKOFF_MAX_MS)
        conn.execute(
            update(table)
            .where(table.c[key] == item_id)
            .values(attempts=table.c.attempts + 1, review_after=now + delay)
        )


def _due_ids(
    reg: Registry, table: Table, key: str, workspace_id: int, now: int, ignore_delay: bool
) -> list[int]:
    with reg.db.read() as conn:
        q = select(table.c[key]).where(table.c.workspace_id == workspace_id)
        if not ignore_delay:
            q = q.where(table.c.review_after <= now)
        return list(conn.execute(q.order_by(table.c[key])).scalars())


_QUEUES: dict[str, tuple[Table, str]] = {
    "manifest": (s.gc_manifest_reviews, "manifest_id"),
    "blob": (s.gc_blob_reviews, "blob_id"),
}


def _review(reg: Registry, kind: str, ids: list[int], now: int, ignore_delay: bool) -> Batch:
    grace = reg.timing.upload_grace
    with reg.db.write() as conn:
        if kind == "manifest":
            batch = review_manifests(conn, ids, now, grace, ignore_delay=ignore_delay)
        else:
            batch = review_blobs(conn, ids, now, grace, ignore_delay=ignore_delay)
    return batch


def _review_batch(
    reg: Registry, kind: str, ids: list[int], now: int, ignore_delay: bool, tally: Tally
) -> set[int]:
    """Review ``ids`` in one transaction; if that fails, one by one, so that a bad item
    backs off alone. Deleted blobs' objects go after the commit. Returns the items
    that left the queue (kept or deleted)."""
    try:
        batches = [_review(reg, kind, ids, now, ignore_delay)]
    except Busy:
        return set()  # they stay queued and due: the next pass takes them
    except Exception:
        batches = []
        for item in ids:
            try:
                batches.append(_review(reg, kind, [item], now, ignore_delay))
            except Busy:
                continue
            except Exception:
                log.exception("GC review of %s %s failed; backing off", kind, item)
                tally.failed += 1
                try:
                    _backoff(reg, *_QUEUES[kind], item, now)
                except Exception:
                    log.exception("could not back off %s %s", kind, item)
    settled: set[int] = set()
    for batch in batches:
        tally.count(batch)
        settled |= {i for i, _event, o in batch.reviewed if o is not Outcome.DEFERRED}
        if not batch.freed:
            continue
        try:
            # One request per thousand objects on S3 (DeleteObjects).
            reg.store.delete_objects(
                ObjectRef(f.workspace_id, f.digest, f.generation) for f in batch.freed
            )
        except (OSError, StoreUnavailable):
            # The rows are gone, so only bytes leak; fsck --repair reclaims them.
            log.exception("could not remove the objects of %d blobs", len(batch.freed))
    return settled


def review_workspace(
    reg: Registry,
    workspace_id: int,
    *,
    ignore_delay: bool = False,
    sweep_images: bool = False,
    clock: Clock = now_ms,
    should_stop: ShouldStop = lambda: False,
) -> Tally:
    """Review the workspace's due items (every queued item with ``ignore_delay``),
    following the chain of reviews that deletions queue. Never ignores the grace.

    Then remove image rows left empty: those this pass touched, or every one in the
    workspace with ``sweep_images``.
    """
    now = clock()
    tally = Tally(started_at=now)
    seen: dict[str, set[int]] = {"manifest": set(), "blob": set()}
    for _round in range(MAX_ROUNDS):
        progressed = False
        # Manifests first: deleting one queues its blobs, reviewed in the same round.
        for kind in ("manifest", "blob"):
            table, key = _QUEUES[kind]
            due = [
                i
                for i in _due_ids(reg, table, key, workspace_id, now, ignore_delay)
                if i not in seen[kind]
            ]
            for start in range(0, len(due), BATCH):
                if should_stop():
                    return tally
                ids = due[start : start + BATCH]
                # An item that left the queue may come back within this pass (a kept
                # child whose index goes): review it again then. One still queued
                # (deferred, locked, busy, failed) waits for a later pass.
                seen[kind].update(ids)
                seen[kind] -= _review_batch(reg, kind, ids, now, ignore_delay, tally)
                progressed = True
        if not progressed:
            break
    if tally.candidate_images or sweep_images:
        try:
            with reg.db.write() as conn:
                tally.images_removed += remove_empty_images(
                    conn, workspace_id, None if sweep_images else tally.candidate_images
                )
        except Busy:
            pass  # they are only rows; a later run removes them
    return tally


def record_run(reg: Registry, workspace_id: int, tally: Tally, *, clock: Clock = now_ms) -> GcRun:
    """Write the run to ``gc_runs`` and the audit log, then tell subscribers."""
    duration = max(0, clock() - tally.started_at)
    triggers = sorted(tally.triggers)
    with reg.db.write() as conn:
        run_id = inserted_id(
            conn.execute(
                insert(s.gc_runs).values(
                    workspace_id=workspace_id,
                    triggers=",".join(triggers)[:255],
                    started_at=tally.started_at,
                    duration_ms=duration,
                    manifests_deleted=tally.manifests_deleted,
                    blobs_deleted=tally.blobs_deleted,
                    bytes_freed=tally.bytes_freed,
                )
            )
        )
        run = GcRun(
            run_id,
            workspace_id,
            triggers,
            tally.started_at,
            duration,
            tally.manifests_deleted,
            tally.blobs_deleted,
            tally.bytes_freed,
        )
        slug = conn.execute(
            select(s.workspaces.c.slug).where(s.workspaces.c.id == workspace_id)
        ).scalar()
        detail = {
            **{k: v for k, v in run.as_dict().items() if k != "workspace_id"},
            "reviewed": tally.reviewed,
            "deferred": tally.deferred,
            "failed": tally.failed,
            "images_removed": tally.images_removed,
        }
        conn.execute(
            insert(s.audit_log).values(
                workspace_id=workspace_id,
                at=tally.started_at,
                actor=None,
                action="gc.run",
                target=str(slug or workspace_id),
                detail=json.dumps(detail, sort_keys=True),
            )
        )
    reg.events.publish(workspace_id, {"type": "gc_run", "run": run.as_dict()})
    return run


def _sample(reg: Registry, workspace_id: int, clock: Clock, min_interval_ms: int) -> None:
    with contextlib.suppress(Busy):  # the worker's periodic sampling catches up
        samples.record_if_changed(reg.db, workspace_id, clock(), min_interval_ms=min_interval_ms)


def run_workspace(
    reg: Registry,
    workspace_id: int,
    *,
    ignore_delay: bool = False,
    manual: bool = False,
    clock: Clock = now_ms,
    should_stop: ShouldStop = lambda: False,
) -> GcRun | None:
    """One recorded run over a workspace. Returns None (and records nothing) when it
    is not worth recording (see ``Tally.worth_recording``), unless ``manual``: an
    admin's run is always recorded, sweeps every empty image and lists "manual"
    among its triggers."""
    if manual:
        _sample(reg, workspace_id, clock, 0)  # the point just before it, for the chart
    tally = review_workspace(
        reg,
        workspace_id,
        ignore_delay=ignore_delay,
        sweep_images=manual,
        clock=clock,
        should_stop=should_stop,
    )
    if manual:
        tally.triggers.add(MANUAL)
    elif not tally.worth_recording:
        return None
    run = record_run(reg, workspace_id, tally, clock=clock)
    _sample(reg, workspace_id, clock, 0 if manual else samples.MIN_INTERVAL_MS)
    return run


def held(reg: Registry) -> str | None:
    """Why collection is held (see ``HOLD_KEY``), or None."""
    with reg.db.read() as conn:
        value = conn.execute(select(s.settings.c.value).where(s.settings.c.key == HOLD_KEY))
        reason = value.scalar()
    return None if reason is None else str(reason)


def run_now(registry: Registry, workspace_id: int) -> GcRun:
    """ "Run GC now" for one workspace: review everything queued without waiting for
    the review delay (the upload grace and every race rule still apply), remove
    empty image rows, and return the recorded run. Blocking: call it in a thread.
    Refused (Conflict) while collection is held."""
    reason = held(registry)
    if reason is not None:
        raise Conflict(f"garbage collection is held: {reason}; try again later")
    run = run_workspace(registry, workspace_id, ignore_delay=True, manual=True)
    assert run is not None
    return run


def due_workspaces(reg: Registry, now: int, *, ignore_delay: bool = False) -> list[int]:
    """Workspaces with reviews due at ``now`` (any queued review with ``ignore_delay``)."""
    with reg.db.read() as conn:
        found: set[int] = set()
        for table in (s.gc_manifest_reviews, s.gc_blob_reviews):
            q = select(table.c.workspace_id).distinct()
            if not ignore_delay:
                q = q.where(table.c.review_after <= now)
            found.update(conn.execute(q).scalars())
    return sorted(found)


def next_due(reg: Registry) -> int | None:
    """When the earliest queued review falls due (ms), or None if nothing is queued."""
    with reg.db.read() as conn:
        times = [
            conn.execute(select(func.min(t.c.review_after))).scalar()
            for t in (s.gc_manifest_reviews, s.gc_blob_reviews)
        ]
    due = [int(t) for t in times if t is not None]
    # An expiring trash entry is due work too: its holds become reviews.
    expiry = trash.next_expiry(reg)
    if expiry is not None:
        due.append(expiry)
    return min(due) if due else None


def run_pass(
    reg: Registry,
    *,
    ignore_delay: bool = False,
    workspace_ids: Iterable[int] | None = None,
    clock: Clock = now_ms,
    should_stop: ShouldStop = lambda: False,
) -> list[GcRun]:
    """Review every workspace with due items (only ``workspace_ids``, if given);
    returns the runs worth recording (one per workspace at most). Nothing while
    collection is held."""
    if held(reg) is not None:
        return []
    # Expired trash entries first: what they held is queued (due after the review
    # delay, as a delete with the trash off queues it).
    trash.expire_due(reg, clock=clock, should_stop=should_stop, workspace_ids=workspace_ids)
    only = None if workspace_ids is None else set(workspace_ids)
    runs: list[GcRun] = []
    for workspace_id in due_workspaces(reg, clock(), ignore_delay=ignore_delay):
        if should_stop():
            break
        if only is not None and workspace_id not in only:
            continue
        run = run_workspace(
            reg, workspace_id, ignore_delay=ignore_delay, clock=clock, should_stop=should_stop
        )
        if run is not None:
            runs.append(run)
    return runs


def describe(run: GcRun, workspace: str) -> str:
    """One line for the command line and logs."""
    return (
        f"gc: workspace {workspace}: {run.manifests_deleted} manifests and "
        f"{run.blobs_deleted} blobs deleted, {format_bytes(run.bytes_freed)} freed "
        f"in {run.duration_ms} ms (triggers: {', '.join(run.triggers) or 'none'})"
    )
