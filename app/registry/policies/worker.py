"""Cleanup runs inside ``serve``: policies on a schedule, and runs started through the
API, each in a thread of its own so a long run never holds up a request.

Every ``check_s`` seconds each node claims the policies that are due in one write
transaction: the policy rows are locked with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` serializes the claim), a running run is
recorded for each (the partial unique index allows one per scope, on every node)
and ``next_run_at`` moves on by the interval before the commit. So a due policy is
claimed by exactly one node, and a node finding it locked or running skips it.
The claimed runs then plan the saved policy and execute the plan.

Stopping sets a flag the executor checks between chunks; a run stopped that way is
recorded as failed ("the registry is stopping") and the next slot runs again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from sqlalchemy import select, update

from app.registry.db import schema as s
from app.registry.db.engine import Busy, now_ms
from app.registry.policies import plans as policies
from app.registry.service import Registry

log = logging.getLogger(__name__)

CHECK_S = 5.0


def claim_due(reg: Registry, now: int) -> list[tuple[policies.Scope, int]]:
    """Claim the due policies (see the module docstring): (scope, run id) each."""
    c = s.cleanup_policies.c
    claimed: list[tuple[policies.Scope, int]] = []
    with reg.db.write() as conn:
        rows = conn.execute(
            select(c.id, c.scope, c.rules, c.interval_s, c.next_run_at)
            .where(c.next_run_at.is_not(None), c.next_run_at <= now)
            .order_by(c.id)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            scope = policies.scope_by_key(conn, row.scope)
            interval_ms = max(int(row.interval_s or 0), 1) * 1000
            # The next slot after now, on the policy's own beat.
            behind = max(0, now - int(row.next_run_at)) // interval_ms + 1
            next_at = int(row.next_run_at) + behind * interval_ms
            try:
                run_id = policies.start_run(
                    conn,
                    scope,
                    rules=policies.rules_from_json(row.rules),
                    trigger=policies.SCHEDULE,
                    actor=None,
                    preview_id=None,
                    planned=0,
                    now=now,
                )
            except policies.RunInProgress:
                continue  # still running from the last slot: this one is skipped
            finally:
                conn.execute(
                    update(s.cleanup_policies).where(c.id == row.id).values(next_run_at=next_at)
                )
            claimed.append((scope, run_id))
    return claimed


class PolicyWorker:
    def __init__(self, reg: Registry, check_s: float = CHECK_S) -> None:
        self.reg = reg
        self.check_s = check_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def background(self, name: str, fn: Callable[[], object]) -> None:
        """Run ``fn`` in a thread of its own, waited for when the worker stops."""
        thread = threading.Thread(target=self._guard, args=(fn,), name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    @staticmethod
    def _guard(fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:
            log.exception("background cleanup run failed")

    def check(self) -> int:
        """Claim what is due and start it; returns how many runs started."""
        claimed = claim_due(self.reg, now_ms())
        for scope, run_id in claimed:
            self.background(
                f"policy-run-{run_id}",
                lambda scope=scope, run_id=run_id: policies.run_saved(  # type: ignore[misc]
                    self.reg,
                    scope,
                    policies.SCHEDULE,
                    None,
                    should_stop=self.stopping,
                    claimed_run=run_id,
                ),
            )
        return len(claimed)

    async def run(self) -> None:
        self.reg.start_background = self.background
        self.reg.stopping = self.stopping
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.check)
            except Busy:
                pass
            except Exception:  # keep scheduling; the next check retries
                log.exception("cleanup schedule check failed")
            await asyncio.sleep(self.check_s)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
