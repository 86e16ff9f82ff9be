"""Storage of a plain OCI registry, as far as its API lets a client tell.

A Distribution-API registry reports no storage figures, so Berth scans it: every
tag's manifest, config and index children (with the connection's bounded
concurrency, a progress bar and cancel) and computes from them the bytes tags
reach, what images share, each image's exclusive bytes, and later what a delete
frees. What the API cannot show is said so: the bytes stored and those pending
garbage collection are unknown, and only the registry's own garbage collector
(``registry garbage-collect``) frees deleted content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.client.berth_api import RepositoryStorage
from app.client.scan import PENDING_GC_UNKNOWN, ScanProgress
from app.core.storage import SharedLayer
from app.ui.backends.oci import OciBackend, ScanResult
from app.ui.common.formatting import counted, exact_bytes, format_bytes, short_digest
from app.ui.common.operations import Operations
from app.ui.common.table_model import Column, PagedTableModel
from app.ui.common.table_panel import TablePanel
from app.ui.storage.charts import RepositoriesChart, percent
from app.ui.storage.summary import FigureCard

DESCRIPTION = "What a scan of the registry's manifests shows about its storage"
STORED_UNKNOWN = (
    "Unknown: the Distribution API cannot list the blobs a registry holds, only what "
    "its tags reach."
)


@dataclass(frozen=True, slots=True)
class ImageUsageRow:
    name: str
    tags: int
    exclusive: int
    shared: int

    @property
    def total(self) -> int:
        return self.exclusive + self.shared


IMAGE_COLUMNS: list[Column[ImageUsageRow]] = [
    Column("Image", lambda r: r.name, lambda r: r.name, description="Repository name"),
    Column("Tags", lambda r: str(r.tags), lambda r: r.tags, numeric=True),
    Column(
        "Size",
        lambda r: format_bytes(r.total),
        lambda r: r.total,
        lambda r: f"{exact_bytes(r.total)} its tags reach",
        numeric=True,
        description="Distinct bytes its tags reach",
    ),
    Column(
        "Exclusive",
        lambda r: format_bytes(r.exclusive),
        lambda r: r.exclusive,
        lambda r: f"{exact_bytes(r.exclusive)}: freed by the registry's GC if the image goes",
        numeric=True,
        description="Bytes no other image reaches (freed by the registry's GC if it goes)",
    ),
    Column(
        "Shared",
        lambda r: format_bytes(r.shared),
        lambda r: r.shared,
        lambda r: f"{exact_bytes(r.shared)} that other images reach too",
        numeric=True,
        description="Bytes other images reach too (kept while any of them is)",
    ),
]

LAYER_COLUMNS: list[Column[SharedLayer]] = [
    Column("Digest", lambda x: short_digest(x.digest), lambda x: x.digest, lambda x: x.digest),
    Column(
        "Size",
        lambda x: format_bytes(x.size),
        lambda x: x.size,
        lambda x: exact_bytes(x.size),
        numeric=True,
    ),
    Column("Images", lambda x: str(len(x.images)), lambda x: len(x.images), numeric=True),
    Column(
        "Shared by",
        lambda x: ", ".join(sorted(str(i) for i in x.images)),
        lambda x: sorted(str(i) for i in x.images),
        description="The images that reach this blob",
    ),
]


class OciStorageView(QWidget):
    scanned = Signal()  # new figures (a scan ended, or deletes changed them)

    def __init__(self, ops: Operations, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ociStorageView")
        self.ops = ops
        self.backend: OciBackend | None = None
        self.progress_seen: list[ScanProgress] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)

        top = QHBoxLayout()
        self.title = QLabel("Storage", self)
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.title.setFont(font)
        top.addWidget(self.title, 1)
        self.status = QLabel(self)
        self.status.setAccessibleName("Scan status")
        top.addWidget(self.status)
        self.progress = QProgressBar(self)
        self.progress.setAccessibleName("Scan progress")
        self.progress.setMaximumWidth(240)
        self.progress.hide()
        top.addWidget(self.progress)
        self.scan_button = QPushButton("&Scan storage", self)
        self.scan_button.setAccessibleDescription(
            "Read every tag's manifest to compute what is shared and what a delete frees"
        )
        self.scan_button.clicked.connect(self.start_scan)
        top.addWidget(self.scan_button)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setAccessibleDescription("Stop the scan")
        self.cancel_button.clicked.connect(self.cancel_scan)
        self.cancel_button.hide()
        top.addWidget(self.cancel_button)
        layout.addLayout(top)

        self.intro = QLabel(self)
        self.intro.setWordWrap(True)
        self.intro.setAccessibleName("About these figures")
        layout.addWidget(self.intro)

        cards = QHBoxLayout()
        cards.setSpacing(6)
        self.referenced = FigureCard(
            "Referenced", "Distinct bytes reachable from tags (exclusive plus shared)", None, self
        )
        self.shared = FigureCard("Shared", "Bytes that two or more images reach", None, self)
        self.logical = FigureCard(
            "Logical size", "What the images would take if nothing were shared", None, self
        )
        self.stored = FigureCard("Stored", STORED_UNKNOWN, None, self)
        self.pending = FigureCard("Pending GC", PENDING_GC_UNKNOWN, None, self)
        self.unreferenced = FigureCard(
            "Deleted here, not yet freed",
            "Bytes that deletes made in this window since the scan left unreferenced: "
            "the registry frees them when its own garbage collector runs",
            None,
            self,
        )
        self.cards = (
            self.referenced,
            self.shared,
            self.logical,
            self.stored,
            self.pending,
            self.unreferenced,
        )
        for card in self.cards:
            cards.addWidget(card, 1)
        layout.addLayout(cards)

        self.gc_note = QLabel(PENDING_GC_UNKNOWN, self)
        self.gc_note.setWordWrap(True)
        self.gc_note.setAccessibleName("Garbage collection")
        self.gc_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.gc_note)
        self.errors = QLabel(self)
        self.errors.setWordWrap(True)
        self.errors.setStyleSheet("color: #a11;")
        self.errors.setAccessibleName("Scan problems")
        self.errors.hide()
        layout.addWidget(self.errors)

        self.chart = RepositoriesChart(self)
        self.chart.chart().setTitle("Largest images")
        self.chart.setMinimumHeight(180)
        self.images_model: PagedTableModel[ImageUsageRow] = PagedTableModel(
            IMAGE_COLUMNS, key=lambda r: r.name, search_text=lambda r: r.name, name="oci-usage"
        )
        self.images = TablePanel(
            self.images_model,
            name="ociUsage",
            title="Images",
            noun="images",
            placeholder="Filter images",
            multi=False,
            parent=self,
        )
        self.layers_model: PagedTableModel[SharedLayer] = PagedTableModel(
            LAYER_COLUMNS,
            key=lambda x: x.digest,
            search_text=lambda x: " ".join([x.digest, *map(str, x.images)]),
            name="oci-shared",
        )
        self.layers = TablePanel(
            self.layers_model,
            name="ociSharedLayers",
            title="Shared layers",
            noun="layers",
            placeholder="Filter by digest or image",
            multi=False,
            parent=self,
        )
        tables = QSplitter(Qt.Orientation.Horizontal, self)
        tables.addWidget(self.images)
        tables.addWidget(self.layers)
        body = QSplitter(Qt.Orientation.Vertical, self)
        body.addWidget(self.chart)
        body.addWidget(tables)
        body.setStretchFactor(0, 2)
        body.setStretchFactor(1, 3)
        layout.addWidget(body, 1)
        self.set_backend(None)

    # --- what to show ---------------------------------------------------------------
    def set_backend(self, backend: OciBackend | None) -> None:
        self.ops.cancel("oci-scan")
        self.backend = backend
        self._scanning(False)
        registry = backend.registry if backend is not None else "the registry"
        self.title.setText(f"Storage of {registry}")
        self.scan_button.setEnabled(backend is not None)
        self.show_figures()

    def show_figures(self) -> None:
        """The last scan's figures (kept current as deletes made here go)."""
        backend = self.backend
        result = backend.last_scan if backend is not None else None
        for card in self.cards:
            card.clear()
        self.stored.note.setText("unknown to the API")
        self.pending.note.setText("unknown: the registry's own GC frees it")
        self.stored.setToolTip(STORED_UNKNOWN)
        self.pending.setToolTip(PENDING_GC_UNKNOWN)
        if result is None:
            self.intro.setText(
                "A plain OCI registry reports no storage figures. Scan it to see what its "
                "tags reference, which layers images share and what each image holds "
                "alone; deleting then shows what it frees."
            )
            self.status.setText("Not scanned yet")
            self.images_model.set_rows([])
            self.layers_model.set_rows([])
            self.chart.show_repositories([])
            self.errors.hide()
            return
        self._show(result)

    def _show(self, result: ScanResult) -> None:
        s = result.storage
        scan = result.scan
        when = result.at.astimezone().strftime("%Y-%m-%d %H:%M")
        self.status.setText(f"Scanned {when}")
        self.intro.setText(
            f"Computed by Berth from the manifests it read at {when}: "
            f"{counted(len(scan.repositories), 'image')}, {counted(len(scan.tags), 'tag')}, "
            f"{counted(len(scan.manifests), 'manifest')}. Pushes and deletes made elsewhere since "
            "show in the next scan."
        )
        exclusive = s.referenced - s.shared
        self.referenced.show_bytes(
            s.referenced,
            f"exclusive {format_bytes(exclusive)}",
            f"Exclusive (one image): {exact_bytes(exclusive)}; shared: {exact_bytes(s.shared)}",
        )
        self.shared.show_bytes(s.shared, f"{percent(s.shared, s.referenced)} of referenced")
        self.logical.show_bytes(s.logical, f"sharing saves {format_bytes(s.sharing_saving)}")
        freed = result.unreferenced_since
        self.unreferenced.show_bytes(freed, "awaiting the registry's GC" if freed else "none")
        tags: dict[str, int] = {}
        for repository, _tag in scan.tags:
            tags[repository] = tags.get(repository, 0) + 1
        rows = [
            ImageUsageRow(name, tags.get(name, 0), u.exclusive, u.shared)
            for name, u in s.images.items()
        ]
        self.images_model.set_rows(sorted(rows, key=lambda r: (-r.total, r.name)))
        self.layers_model.set_rows(s.shared_layers)
        for panel in (self.images, self.layers):
            panel.view.resizeColumnsToContents()
        self.chart.show_repositories(
            [RepositoryStorage(r.name, "", r.exclusive, r.shared, 1) for r in rows]
        )
        # The chart speaks of repositories; here each repository name is an image.
        self.chart.chart().setTitle(self.chart.chart().title().replace("repositories", "images"))
        if scan.errors:
            first, error = next(iter(scan.errors.items()))
            self.errors.setText(
                f"{counted(len(scan.errors), 'repository or tag', 'repositories or tags')} "
                f"could not be read and {'is' if len(scan.errors) == 1 else 'are'} not counted "
                f"(first, {first}: {error.message})"
            )
        self.errors.setVisible(bool(scan.errors))

    # --- scanning -------------------------------------------------------------------
    def start_scan(self) -> Any:
        backend = self.backend
        if backend is None:
            return None
        self.progress_seen = []
        self._scanning(True)
        self.status.setText("Listing repositories…")
        return self.ops.run(
            backend.scan_storage(self._progress),
            name="oci-scan",
            on_done=self._scanned,
            on_error=self._failed,
        )

    def cancel_scan(self) -> None:
        self.ops.cancel("oci-scan")
        self._scanning(False)
        self.status.setText("Scan cancelled")
        if self.backend is not None and self.backend.last_scan is not None:
            self.status.setText("Scan cancelled; showing the previous scan")

    def _progress(self, p: ScanProgress) -> None:
        self.progress_seen.append(p)
        self.progress.setRange(0, p.repositories_total + p.tags_total)
        self.progress.setValue(p.repositories_done + p.tags_done)
        if p.repositories_done < p.repositories_total:
            text = (
                f"Listing tags: {p.repositories_done:,} of {counted(p.repositories_total, 'image')}"
            )
        else:
            text = f"Reading manifests: {p.tags_done:,} of {counted(p.tags_total, 'tag')}"
        self.status.setText(f"{text} ({counted(p.requests, 'request')})")

    def _scanned(self, _result: ScanResult) -> None:
        self._scanning(False)
        self.show_figures()
        self.scanned.emit()

    def _failed(self, _error: object) -> bool:
        self._scanning(False)
        self.status.setText("Scan failed")
        return False  # shown in the error bar like every failure

    def _scanning(self, on: bool) -> None:
        self.progress.setVisible(on)
        self.cancel_button.setVisible(on)
        self.scan_button.setEnabled(not on and self.backend is not None)
        self.scan_button.setText("&Scan again" if self._has_scan() else "&Scan storage")

    def _has_scan(self) -> bool:
        return self.backend is not None and self.backend.last_scan is not None
