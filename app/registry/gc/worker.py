"""The GC worker of a serve process: an asyncio task that runs review passes in a
worker thread whenever reviews fall due, and samples storage figures.

It sleeps until the earliest queued review is due, but never longer than
``idle_s``: other processes (another node, ``berth-registry gc``) and pushes queue
reviews without waking it. Deletes wake it through ``Registry.wake_gc``; it then
waits a moment so a burst of deletes is reviewed in one run. Stopping sets a flag
the pass checks between batches, so shutdown waits for one batch at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterable

from app.registry.db.engine import Busy, now_ms
from app.registry.gc import collector as gc
from app.registry.gc import samples
from app.registry.service import Registry

log = logging.getLogger(__name__)

IDLE_S = 1.0
# After a pass that could not review its due items (locked, busy), wait this long.
RETRY_S = 0.25
ERROR_S = 5.0
SETTLE_S = 0.1
SAMPLE_EVERY_S = 5.0


class GcWorker:
    def __init__(
        self,
        reg: Registry,
        *,
        idle_s: float = IDLE_S,
        sample_every_s: float = SAMPLE_EVERY_S,
        workspace_ids: Iterable[int] | None = None,
    ) -> None:
        self.reg = reg
        self.workspace_ids = None if workspace_ids is None else sorted(workspace_ids)
        self.idle_s = idle_s
        self.sample_every_ms = int(sample_every_s * 1000)
        self._stop = threading.Event()
        self._last_sample = 0
        self.runs = 0

    def stop(self) -> None:
        self._stop.set()

    def _pass(self) -> tuple[int, int | None]:
        """One pass (in a thread): returns (runs recorded, when the next review is due).
        While collection is held, neither reviews nor samples (their clock is not ours)."""
        if gc.held(self.reg) is not None:
            return 0, None
        runs = gc.run_pass(
            self.reg, workspace_ids=self.workspace_ids, should_stop=self._stop.is_set
        )
        self.runs += len(runs)
        now = now_ms()
        if (
            now - self._last_sample >= self.sample_every_ms
            and not self._stop.is_set()
            and gc.held(self.reg) is None
        ):
            self._last_sample = now
            samples.sample_all(self.reg.db, now)
        return len(runs), gc.next_due(self.reg)

    def _delay(self, runs: int, due: int | None) -> float:
        if due is None:
            return self.idle_s
        wait = max(0.0, (due - now_ms()) / 1000)
        if wait == 0.0 and runs == 0:
            wait = RETRY_S  # due but not reviewable right now (locked, busy): don't spin
        return min(wait, self.idle_s)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def wake_gc() -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(wake.set)

        self.reg.wake_gc = wake_gc
        try:
            while not self._stop.is_set():
                wake.clear()
                try:
                    runs, due = await self.reg.run(self._pass)
                    delay = self._delay(runs, due)
                except Busy:
                    delay = RETRY_S
                except Exception:  # keep collecting; the next pass retries
                    log.exception("GC pass failed")
                    delay = ERROR_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)
                    # Woken by a delete: let the rest of its burst (a bulk delete
                    # arrives as many requests) arrive, and review it in one run.
                    await asyncio.sleep(SETTLE_S)
        finally:
            self.reg.wake_gc = lambda: None


def run_until_stopped(reg: Registry, *, workspace_ids: Iterable[int] | None = None) -> None:
    """``berth-registry gc`` without ``--once``: a GC-only process (for instance on a
    node that serves no traffic) until SIGTERM or SIGINT."""
    worker = GcWorker(reg, workspace_ids=workspace_ids)
    # Its runs reach the serve nodes' event streams through PostgreSQL.
    relay = None
    if not reg.db.is_sqlite:
        from app.registry.event_relay import relay_for  # psycopg: the postgres extra

        relay = relay_for(reg.db.engine, reg.events, listen=False)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _stopper(worker, reg))
        await worker.run()

    if relay is not None:
        relay.start()
    try:
        asyncio.run(main())
    finally:
        if relay is not None:
            relay.stop()


def _stopper(worker: GcWorker, reg: Registry) -> Callable[[], None]:
    def stop() -> None:
        worker.stop()
        reg.wake_gc()

    return stop
