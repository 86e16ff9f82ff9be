"""The storage view: where a workspace's bytes are, what is shared, what GC will free.

A tab beside Browse (:mod:`app.ui.storage.tabs`), showing the workspace selected in
the navigator: the headline figures, three charts, the shared layers and the GC panel.
It keeps itself current from the workspace's event stream (pushes, deletes, GC
runs), not by polling: an event schedules one refresh, and a burst of events is
coalesced into at most one refresh a second, each an asyncio task so the window
never waits. Hidden, it only notes that it is stale and refreshes when shown.
After the stream reconnects it refreshes too: the server does not replay the
events missed meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.client.berth_api import (
    GcRun,
    GcStatus,
    Page,
    RepositoryStorage,
    SharedLayer,
    Storage,
    StorageHistory,
    StorageSample,
)
from app.client.errors import ClientError
from app.client.events import ServerEvent
from app.ui.backends.protocol import Backend, StorageSource
from app.ui.common.operations import Operations
from app.ui.storage import gc_panel, style
from app.ui.storage.charts import CompositionChart, DonutLegend, HistoryChart, RepositoriesChart
from app.ui.storage.gc_panel import GcPanel
from app.ui.storage.indicator import PendingGcButton
from app.ui.storage.layers import ALL, SharedLayersPanel
from app.ui.storage.summary import StorageSummary

DEBOUNCE_MS = 250  # events of one action (a bulk delete) arrive within this
MIN_INTERVAL_MS = 1000  # a push storm refreshes at most this often
# What changes the figures: restores and the trash's end move bytes between "in
# trash", referenced and pending GC.
EVENT_TYPES = frozenset(
    {
        "pushed",
        "tag_deleted",
        "manifest_deleted",
        "image_deleted",
        "gc_run",
        "restored",
        "trash_expired",
        "trash_emptied",
    }
)
DESCRIPTION = "Where the bytes are, what is shared, what garbage collection will free"


def storage_source(backend: Backend | None) -> StorageSource | None:
    """``backend`` when it reports storage figures (a Berth registry), else None."""
    if backend is None or not backend.capabilities.storage:
        return None
    candidate: object = backend  # a Backend may or may not be a StorageSource too
    return candidate if isinstance(candidate, StorageSource) else None


class StorageView(QWidget):
    repositoryActivated = Signal(object)  # RepositoryStorage: a bar was clicked
    figuresChanged = Signal(object, object)  # workspace, Storage | None
    refreshed = Signal()  # figures, charts and GC panel show the server's latest answer
    serverEvent = Signal(object)  # ServerEvent: every event of the workspace's stream

    def __init__(self, ops: Operations, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("storageView")
        self.ops = ops
        self.backend: StorageSource | None = None
        self.workspace: str | None = None
        self.admin = False
        self.storage: Storage | None = None
        self.gc: GcStatus | None = None
        self.history: StorageHistory | None = None
        self.events_seen = 0  # events the stream brought (since the view started)
        self.refreshes = 0  # refreshes that landed
        self.stream_opens = 0  # times the event stream (re)opened for this workspace
        self.indicator: PendingGcButton | None = None  # the toolbar's, once installed
        self.stale = True  # something changed while hidden: refresh when shown
        self._generation = 0
        self._refreshing = False
        self._dirty = False
        self._last_start = 0.0
        self._ran: GcRun | None = None  # run GC now's answer, shown with its overview
        self._build()

    # === layout ====================================================================
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        outer.setSpacing(6)
        top = QHBoxLayout()
        self.title = style.heading("Storage", self, 1.15)
        top.addWidget(self.title, 1)
        self.live = QLabel("", self)
        self.live.setObjectName("storageLive")
        self.live.setAccessibleName("Live updates")
        top.addWidget(self.live)
        self.updated = QLabel("", self)
        self.updated.setEnabled(False)
        top.addWidget(self.updated)
        self.refresh_button = QToolButton(self)
        self.refresh_button.setText("Refresh")
        self.refresh_button.setAccessibleName("Refresh storage figures")
        self.refresh_button.setToolTip("Read the figures again (they also update by themselves)")
        self.refresh_button.clicked.connect(self.refresh)
        top.addWidget(self.refresh_button)
        outer.addLayout(top)

        self.pages = QStackedWidget(self)
        self.placeholder = QLabel("Select a workspace in the navigator.", self.pages)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setEnabled(False)
        self.pages.addWidget(self.placeholder)

        body = QWidget(self.pages)
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.summary = StorageSummary(body)
        layout.addWidget(self.summary)
        self.splitter = QSplitter(Qt.Orientation.Vertical, body)
        self.splitter.setObjectName("storageSplitter")
        self.splitter.setChildrenCollapsible(False)
        charts = QWidget(self.splitter)
        charts.setObjectName("storageCharts")
        charts_layout = QHBoxLayout(charts)
        charts_layout.setContentsMargins(0, 0, 0, 0)
        charts_layout.setSpacing(6)
        donut = QWidget(charts)
        donut_layout = QVBoxLayout(donut)
        donut_layout.setContentsMargins(0, 0, 0, 6)
        self.composition = CompositionChart(donut)
        self.composition_legend = DonutLegend(self.composition, donut)
        donut_layout.addWidget(self.composition, 1)
        donut_layout.addWidget(self.composition_legend, 0, Qt.AlignmentFlag.AlignHCenter)
        self.repositories = RepositoriesChart(charts)
        self.history_chart = HistoryChart(charts)
        # Widths by stretch alone (size hints ignored): the history needs the most.
        for widget, stretch in ((donut, 4), (self.repositories, 4), (self.history_chart, 5)):
            policy = widget.sizePolicy()
            policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
            widget.setSizePolicy(policy)
            charts_layout.addWidget(widget, stretch)
        self.charts = charts
        lower = QSplitter(Qt.Orientation.Horizontal, self.splitter)
        lower.setObjectName("storageTables")
        lower.setChildrenCollapsible(False)
        self.layers = SharedLayersPanel(self.ops.run, lower)
        self.gc_panel = GcPanel(lower)
        lower.setStretchFactor(0, 4)
        lower.setStretchFactor(1, 5)
        self.tables = lower
        # Charts first: they answer "where did the bytes go" at a glance.
        self.splitter.setStretchFactor(0, 5)
        self.splitter.setStretchFactor(1, 4)
        self.splitter.setSizes([320, 300])
        layout.addWidget(self.splitter, 1)
        self.pages.addWidget(body)
        self.body = body
        outer.addWidget(self.pages, 1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        self._headline_timer = QTimer(self)
        self._headline_timer.setSingleShot(True)
        self._headline_timer.timeout.connect(self.refresh_headline)
        self.repositories.repositoryClicked.connect(self._bar_clicked)
        self.layers.repositoryChanged.connect(self._filter_layers)
        self.gc_panel.runRequested.connect(self.run_gc)
        self._show_placeholder()

    # === what to show ==============================================================
    def set_backend(self, backend: Backend | None) -> None:
        """A new connection (or none): forget the workspace until one is selected."""
        self.backend = storage_source(backend)
        self.workspace = None
        self._reset()
        if backend is not None and self.backend is None:
            self.placeholder.setText("This registry does not report storage figures.")

    def set_workspace(self, workspace: str | None, admin: bool) -> None:
        if workspace == self.workspace:
            if admin != self.admin:
                self.admin = admin
                self.gc_panel.set_permission(admin, workspace)
            return
        self.workspace = workspace
        self.admin = admin
        self._reset()
        if self.backend is None or workspace is None:
            return
        self.title.setText(f"Storage of {workspace}")
        self.gc_panel.set_permission(admin, workspace)
        self.pages.setCurrentWidget(self.body)
        self._start_events()
        if self.isVisible():
            self.refresh()
        else:
            self.refresh_headline()

    def _reset(self) -> None:
        self._generation += 1
        self._timer.stop()
        self._headline_timer.stop()
        for name in (
            "storage",
            "storage-headline",
            "storage-events",
            "storage-gc-run",
            "shared-layers-page",
        ):
            self.ops.cancel(name)
        self._refreshing = self._dirty = False
        self._ran = None
        self.stale = True
        self.stream_opens = 0
        self.storage = self.gc = self.history = None
        self.figuresChanged.emit(None, None)
        self.summary.clear()
        self.gc_panel.clear()
        self.gc_panel.set_permission(False, None)
        self.layers.model.set_source(None)
        self.layers.set_repositories([])
        self.live.setText("")
        self.updated.setText("")
        self._show_placeholder()

    def _show_placeholder(self) -> None:
        self.title.setText("Storage")
        self.placeholder.setText("Select a workspace in the navigator.")
        self.pages.setCurrentWidget(self.placeholder)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.stale and self.workspace is not None and self.backend is not None:
            self.refresh()

    # === loading ===================================================================
    def refresh(self) -> None:
        """Read the figures now (one refresh at a time; asked again meanwhile, it
        runs once more when this one lands)."""
        backend, workspace = self.backend, self.workspace
        if backend is None or workspace is None:
            return
        self._timer.stop()
        if self._refreshing:
            self._dirty = True
            return
        self._refreshing, self._dirty, self.stale = True, False, False
        self._last_start = time.monotonic()
        self.ops.run(
            self._load(backend, workspace, self._generation),
            name="storage",
            on_error=self._load_failed(self._generation),
        )

    def refresh_headline(self) -> None:
        """Read only the storage figures (cheap), for the toolbar while hidden. The
        view keeps showing its last overview: these figures are of another moment
        than its GC panel and history (it refreshes whole when shown)."""
        backend, workspace, generation = self.backend, self.workspace, self._generation
        if backend is None or workspace is None:
            return

        async def load() -> None:
            storage = await backend.storage(workspace)
            if generation == self._generation:
                self.figuresChanged.emit(workspace, storage)

        self.ops.run(load(), name="storage-headline", background=True, on_error=lambda _e: True)

    def refresh_if_shown(self) -> None:
        if self.isVisible():
            self.refresh()
        else:
            self.stale = True

    def schedule_refresh(self) -> None:
        """Something changed on the server: refresh soon, once for a burst."""
        if self.backend is None or self.workspace is None:
            return
        if not self.isVisible():
            # Hidden: only the headline figures (the toolbar's pending GC) follow.
            self.stale = True
            if not self._headline_timer.isActive():
                self._headline_timer.start(MIN_INTERVAL_MS)
            return
        if self._timer.isActive():
            return
        since = (time.monotonic() - self._last_start) * 1000
        self._timer.start(int(max(DEBOUNCE_MS, MIN_INTERVAL_MS - since)))

    async def _load(self, backend: StorageSource, workspace: str, generation: int) -> None:
        """The figures, GC status and history of one moment (one request, read by the
        server in one transaction: a GC run never falls between the figures and the
        GC panel), shown together; then the shared layers."""
        try:
            overview = await backend.storage_overview(workspace)
        finally:
            if generation == self._generation:
                self._refreshing = False
        if generation != self._generation:
            return
        self._show_storage(overview.storage)
        self._show_gc(overview.gc, overview.history)
        self._load_layers()
        if self._dirty:
            self.schedule_refresh()

    def _load_layers(self) -> None:
        layers = self.layers.model
        if layers.source is None:
            self._filter_layers(self.layers.selected_repository)
        elif layers.total is not None and not layers.loading:
            layers.reload()  # what is loaded, read again (a first load may be running)

    def _load_failed(self, generation: int) -> Any:
        def failed(_error: ClientError) -> bool:
            if generation == self._generation:
                self._refreshing = False
                self.stale = True
            return False  # reported in the one place (the error bar)

        return failed

    def _show_storage(self, storage: Storage) -> None:
        self.storage = storage
        self.figuresChanged.emit(self.workspace, storage)
        self.summary.show_storage(storage)
        self.composition.show_storage(storage)
        self.composition_legend.refresh()
        self.repositories.show_repositories(storage.repositories)
        self.layers.set_repositories([r.slug for r in storage.repositories])

    def _show_gc(self, gc: GcStatus, history: StorageHistory) -> None:
        storage = self.storage
        assert storage is not None
        self.gc, self.history = gc, history
        now = StorageSample(None, storage.stored, storage.referenced, storage.pending)
        self.history_chart.show_history(history, now)
        self.gc_panel.show_status(gc)
        ran = self._ran
        if ran is not None and any(r.id == ran.id for r in gc.recent_runs):
            self._ran = None
            self.gc_panel.show_run(ran)
        self.updated.setText(f"updated {time.strftime('%H:%M:%S')}")
        self.refreshes += 1
        self.refreshed.emit()

    def _filter_layers(self, repository: str) -> None:
        backend, workspace = self.backend, self.workspace
        if backend is None or workspace is None:
            self.layers.model.set_source(None)
            return
        repo = repository or None

        async def source(cursor: str | None, sort: str | None, limit: int) -> Page[SharedLayer]:
            return await backend.shared_layers(
                workspace, repository=repo, sort=sort, limit=limit, cursor=cursor
            )

        self.layers.model.set_source(source)

    def show_repository(self, slug: str | None) -> None:
        """The navigator selected a repository (or left one): filter the layers to it."""
        self.layers.select_repository(slug or ALL)

    def _bar_clicked(self, repository: RepositoryStorage) -> None:
        self.layers.select_repository(repository.slug)
        self.repositoryActivated.emit(repository)

    # === live updates ==============================================================
    def _start_events(self) -> None:
        backend, workspace = self.backend, self.workspace
        assert backend is not None
        assert workspace is not None

        async def listen() -> None:
            async for event in backend.events(
                workspace, on_open=self._stream_open, on_retry=self._stream_retry
            ):
                self.on_event(event)

        self.ops.run(listen(), name="storage-events", background=True, on_error=self._stream_failed)

    def on_event(self, event: ServerEvent) -> None:
        self.events_seen += 1
        if event.type in EVENT_TYPES:
            self.schedule_refresh()
        self.serverEvent.emit(event)  # the browse side follows the same stream

    def _stream_open(self) -> None:
        self.stream_opens += 1
        self.live.setText(f'<span style="color:{style.FREED.name()}">●</span> Live')
        self.live.setToolTip("Figures update as the registry reports pushes, deletes and GC runs")
        if self.stream_opens > 1:
            self.schedule_refresh()  # what happened while disconnected was not replayed

    def _stream_retry(self, error: ClientError, delay: float) -> None:
        self.live.setText(f"Reconnecting in {delay:.0f} s…")
        self.live.setToolTip(f"Live updates paused: {error.message}")

    def _stream_failed(self, error: ClientError) -> bool:
        self.live.setText("Not live")
        self.live.setToolTip(f"Live updates stopped: {error.message} (Refresh reads again)")
        return False

    # === run GC now ================================================================
    def run_gc(self) -> asyncio.Task[Any] | None:
        backend, workspace = self.backend, self.workspace
        if backend is None or workspace is None or not self.gc_panel.run_button.isEnabled():
            return None
        return self.ops.run(
            self._run_gc(backend, workspace, self._generation), name="storage-gc-run"
        )

    async def _run_gc(
        self, backend: StorageSource, workspace: str, generation: int
    ) -> GcRun | None:
        if not await gc_panel.confirm_run_gc(self, workspace, self.gc):
            return None
        self.gc_panel.show_running()
        try:
            run = await backend.run_gc(workspace)
        finally:
            if generation == self._generation:
                self.gc_panel.set_permission(self.admin, workspace)
        if generation == self._generation:
            # Said with the overview that holds the run, not beside older figures.
            self._ran = run
            self.refresh()
        return run
