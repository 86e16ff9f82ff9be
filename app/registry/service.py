"""The registry's shared state: store, metadata, auth, timing, events.

One :class:`Registry` is built per serve process (and per ``gc``/``fsck`` command);
the HTTP layers and the GC worker get it from ``app.state.registry``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from app.registry.auth import Authenticator
from app.registry.blobstore import FileBlobStore
from app.registry.content import Timing
from app.registry.db.engine import Database, sqlite_url
from app.registry.events import EventBus
from app.registry.pulls import FLUSH_S, PullLog
from app.registry.uploads import UploadStates

T = TypeVar("T")


@dataclass
class Registry:
    data_dir: Path
    db: Database
    store: FileBlobStore
    auth: Authenticator
    timing: Timing
    events: EventBus = field(default_factory=EventBus)
    uploads: UploadStates = field(default_factory=UploadStates)
    challenge: str = "bearer"  # which WWW-Authenticate scheme /v2/ offers
    # Manifest pulls noted in memory, written every pull_flush_s (app.registry.pulls).
    pulls: PullLog = field(default_factory=PullLog)
    pull_flush_s: float = FLUSH_S
    # Set by the GC worker so "run now" and event triggers can wake it early.
    wake_gc: Callable[[], None] = lambda: None

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        database_url: str | None = None,
        timing: Timing | None = None,
        challenge: str = "bearer",
    ) -> Registry:
        data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(database_url or sqlite_url(data_dir))
        db.migrate()
        return cls(
            data_dir=data_dir,
            db=db,
            store=FileBlobStore(data_dir),
            auth=Authenticator.load(db),
            timing=timing or Timing(),
            challenge=challenge,
        )

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking work (database, fsync) off the event loop."""
        return await run_in_threadpool(fn, *args)

    def close(self) -> None:
        self.db.dispose()
