"""The registry's shared state: store, metadata, auth, timing, events.

One :class:`Registry` is built per serve process (and per ``gc``/``fsck`` command);
the HTTP layers and the GC worker get it from ``app.state.registry``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from app.registry import store_record
from app.registry.auth import Authenticator
from app.registry.blobstore import BlobStore, FileBlobStore, open_blob_store
from app.registry.content import Timing
from app.registry.db.engine import Database, sqlite_url
from app.registry.events import EventBus
from app.registry.pulls import FLUSH_S, PullLog
from app.registry.uploads import UploadLimits, UploadStates

T = TypeVar("T")


@dataclass
class Registry:
    data_dir: Path
    db: Database
    store: BlobStore
    auth: Authenticator
    timing: Timing
    events: EventBus = field(default_factory=EventBus)
    uploads: UploadStates = field(default_factory=UploadStates)
    upload_limits: UploadLimits = field(default_factory=UploadLimits)
    challenge: str = "bearer"  # which WWW-Authenticate scheme /v2/ offers
    # Manifest pulls noted in memory, written every pull_flush_s (app.registry.pulls).
    pulls: PullLog = field(default_factory=PullLog)
    pull_flush_s: float = FLUSH_S
    # Blob GETs answer with a redirect to a presigned URL of the object store.
    redirect_blobs: bool = False
    # Upload sessions idle this long are ended by the housekeeping.
    upload_ttl_ms: int = 24 * 3600 * 1000
    # How often serve looks for cleanup policies that are due (app.registry.policies.worker).
    policy_check_s: float = 5.0
    # Set by the policy worker: runs started through the API go to its threads, and
    # stop between chunks when the process stops.
    start_background: Callable[[str, Callable[[], object]], None] = field(
        default=lambda name, fn: threading.Thread(target=fn, name=name, daemon=True).start()
    )
    stopping: Callable[[], bool] = lambda: False
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
        blob_store: str | None = None,
        redirect_blobs: bool = False,
        upload_limits: UploadLimits | None = None,
        claim_store: bool = False,
    ) -> Registry:
        """Open (and migrate) the registry. ``blob_store`` is a ``--blob-store`` URL
        (default: the data directory); an object store is checked before anything
        else is touched (``StoreUnavailable``, ``ValueError``). With ``claim_store``
        the store must be the one the registry records, or becomes it when none is
        (:mod:`app.registry.store_record`; ``RegistryError``)."""
        store = open_blob_store(blob_store, data_dir)
        if redirect_blobs and isinstance(store, FileBlobStore):
            raise ValueError("--redirect-blobs needs an object store (--blob-store s3://...)")
        data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(database_url or sqlite_url(data_dir))
        try:
            db.migrate()
            if claim_store:
                store_record.claim(db, store)
            auth = Authenticator.load(db)
        except BaseException:
            db.dispose()
            raise
        return cls(
            data_dir=data_dir,
            db=db,
            store=store,
            auth=auth,
            timing=timing or Timing(),
            challenge=challenge,
            redirect_blobs=redirect_blobs,
            upload_limits=upload_limits or UploadLimits(),
        )

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking work (database, fsync) off the event loop."""
        return await run_in_threadpool(fn, *args)

    def close(self) -> None:
        self.db.dispose()
