"""The shared-layers panel of the storage view: the tree of layers two or more
images share, a repository filter, and a count."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.client.berth_api import SharedLayer
from app.ui.common.table_model import ObjectRole, Runner
from app.ui.storage import style
from app.ui.storage.shared_layers_model import DIGEST, IMAGES, SIZE, SharedLayersModel

ALL = ""  # the filter's value for every repository


class SharedLayersPanel(QWidget):
    repositoryChanged = Signal(str)  # "" for every repository

    def __init__(self, runner: Runner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sharedLayersPanel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        top = QHBoxLayout()
        top.addWidget(style.heading("Shared layers", self))
        self.count = QLabel("", self)
        self.count.setAccessibleName("Shared layer count")
        top.addWidget(self.count, 1)
        self.repository = QComboBox(self)
        self.repository.setObjectName("sharedLayersRepository")
        self.repository.setAccessibleName("Repository filter")
        self.repository.setAccessibleDescription("Show only layers one repository's images share")
        self.repository.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.repository.addItem("All repositories", ALL)
        self.repository.currentIndexChanged.connect(
            lambda _i: self.repositoryChanged.emit(self.repository.currentData() or ALL)
        )
        filter_label = QLabel("&Repository:", self)
        filter_label.setBuddy(self.repository)
        top.addWidget(filter_label)
        top.addWidget(self.repository)
        layout.addLayout(top)

        self.model = SharedLayersModel(runner, self)
        self.view = QTreeView(self)
        self.view.setObjectName("sharedLayers")
        self.view.setModel(self.model)
        self.view.setAccessibleName("Shared layers")
        self.view.setAccessibleDescription(
            "Layers that two or more images share: digest, size, number of images; "
            "expand a layer to see its images"
        )
        self.view.setUniformRowHeights(True)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(SIZE, Qt.SortOrder.DescendingOrder)
        header = self.view.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(DIGEST, QHeaderView.ResizeMode.Stretch)
        # Fixed widths from the font, not ResizeToContents: that reads every row of
        # thousands again at each layout (hundreds of milliseconds a page).
        metrics = self.fontMetrics()
        for column, widest in ((SIZE, "1023.9 MiB"), (IMAGES, "Images 10,000")):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, metrics.horizontalAdvance(widest) + 24)
        header.setSortIndicatorShown(True)
        layout.addWidget(self.view, 1)

        self._expanded: set[str] = set()
        self.model.modelAboutToBeReset.connect(self._remember_expanded)
        self.model.modelReset.connect(self._restore_expanded)
        self.model.totalChanged.connect(self._show_count)
        self.model.pageLoaded.connect(self._show_count)
        # Paging: another page when the end is in sight (or the rows do not fill it).
        bar = self.view.verticalScrollBar()
        bar.valueChanged.connect(self._maybe_more)
        bar.rangeChanged.connect(self._maybe_more)
        self.model.pageLoaded.connect(self._maybe_more)

    @property
    def selected_repository(self) -> str:
        return str(self.repository.currentData() or ALL)

    def set_repositories(self, slugs: Sequence[str]) -> None:
        """The filter's choices; the current one stays if it still exists."""
        current = self.selected_repository
        wanted = [ALL, *sorted(slugs)]
        have = [self.repository.itemData(i) for i in range(self.repository.count())]
        if have == wanted:
            return
        self.repository.blockSignals(True)
        try:
            self.repository.clear()
            self.repository.addItem("All repositories", ALL)
            for slug in wanted[1:]:
                self.repository.addItem(slug, slug)
            index = self.repository.findData(current)
            self.repository.setCurrentIndex(max(0, index))
        finally:
            self.repository.blockSignals(False)
        if self.selected_repository != current:
            self.repositoryChanged.emit(self.selected_repository)

    def select_repository(self, slug: str) -> None:
        """Filter to ``slug`` (``ALL``: every repository); unknown names add a choice."""
        index = self.repository.findData(slug)
        if index < 0:
            self.repository.addItem(slug, slug)
            index = self.repository.count() - 1
        self.repository.setCurrentIndex(index)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._maybe_more()  # pages that arrived while hidden may not fill the view

    def _maybe_more(self, *_: object) -> None:
        """Load the next page when the last row is less than a screen below sight."""
        model = self.model
        if not self.isVisible() or not model.can_load_more:
            return
        if model.layers:
            # visualRect lays out pending rows first: right even just after an insert.
            last = self.view.visualRect(model.index(len(model.layers) - 1, 0))
            if last.isValid() and last.top() > 2 * self.view.viewport().height():
                return
        model.load_more()

    def _show_count(self) -> None:
        total = self.model.total
        loaded = len(self.model.layers)
        if total is None:
            self.count.setText("")
        elif loaded < total:
            self.count.setText(f"{loaded:,} of {total:,}")
        else:
            self.count.setText(f"{total:,}")

    def _remember_expanded(self) -> None:
        model = self.model
        self._expanded = {
            layer.digest
            for row, layer in enumerate(model.layers)
            if self.view.isExpanded(model.index(row, 0))
        }

    def _restore_expanded(self) -> None:
        for digest in self._expanded:
            row = self.model.row_of(digest)
            if row is not None:
                self.view.expand(self.model.index(row, 0))

    def current_layer(self) -> SharedLayer | None:
        index = self.view.currentIndex()
        layer = index.sibling(index.row(), 0).data(ObjectRole) if index.isValid() else None
        return layer if isinstance(layer, SharedLayer) else None
