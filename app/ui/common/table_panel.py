"""A titled table with a filter box, over a :class:`PagedTableModel`.

Filtering is immediate on the rows already loaded (the proxy); when not every row
is here, the same text also goes to the server after a short pause, so a filter
finds tags that were not loaded yet.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.ui.common.formatting import counted
from app.ui.common.table_model import FilterProxy, KeyRole, ObjectRole, PagedTableModel

SERVER_FILTER_DELAY_MS = 300


class TablePanel(QWidget):
    selectionChanged = Signal()
    currentChanged = Signal(object)  # the current row object, or None

    def __init__(
        self,
        model: PagedTableModel[Any],
        *,
        name: str,
        title: str,
        noun: str,
        placeholder: str,
        multi: bool,
        sort: tuple[int, Qt.SortOrder] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.noun = noun  # plural; "1 image" takes the singular
        self.one = noun.removesuffix("s")
        self.setObjectName(f"{name}Panel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        top = QHBoxLayout()
        self.title = QLabel(title, self)
        self.title.setObjectName(f"{name}Title")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        top.addWidget(self.title, 1)
        self.count = QLabel(self)
        self.count.setAccessibleName(f"{noun} count")
        top.addWidget(self.count)
        self.filter = QLineEdit(self)
        self.filter.setObjectName(f"{name}Filter")
        self.filter.setPlaceholderText(placeholder)
        self.filter.setClearButtonEnabled(True)
        self.filter.setAccessibleName(f"Filter {noun}")
        self.filter.setAccessibleDescription(placeholder)
        self.filter.setMaximumWidth(260)
        top.addWidget(self.filter)
        layout.addLayout(top)

        self.proxy = FilterProxy(self)
        self.proxy.setSourceModel(model)
        self.view = QTableView(self)
        self.view.setObjectName(f"{name}Table")
        self.view.setModel(self.proxy)
        self.view.setAccessibleName(title)
        self.view.setAccessibleDescription(
            f"{noun.capitalize()}; "
            + ("drag, Shift or Ctrl to select several, Delete deletes" if multi else "")
        )
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(
            QAbstractItemView.SelectionMode.ExtendedSelection
            if multi
            else QAbstractItemView.SelectionMode.SingleSelection
        )
        self.view.setSortingEnabled(True)
        # The default order (None: as the server lists them).
        self.view.sortByColumn(*(sort or (-1, Qt.SortOrder.AscendingOrder)))
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setTabKeyNavigation(False)  # Tab leaves the table: keyboard users move on
        vheader = self.view.verticalHeader()
        vheader.setVisible(False)
        vheader.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vheader.setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setSortIndicatorShown(True)
        header.setHighlightSections(False)
        layout.addWidget(self.view, 1)

        self._server_filter = QTimer(self)
        self._server_filter.setSingleShot(True)
        self._server_filter.setInterval(SERVER_FILTER_DELAY_MS)
        self._server_filter.timeout.connect(self._apply_server_filter)
        self.filter.textChanged.connect(self._filter_changed)
        selection = self.view.selectionModel()
        selection.selectionChanged.connect(self._selection_changed)
        # A mouse press makes the row current before it selects it (arrow keys do
        # both at once): the current row is announced once it is both, whichever
        # signal comes last, and only when it is another row than announced before.
        selection.currentRowChanged.connect(self._announce_current)
        self._announced: Hashable | None = None
        self.proxy.modelReset.connect(self._forget_current)
        for signal in (model.totalChanged, model.rowsInserted, model.rowsRemoved,
                       model.modelReset, model.loadingChanged):  # fmt: skip
            signal.connect(self._update_count)
        self.proxy.layoutChanged.connect(self._update_count)
        self._sized = False
        model.pageLoaded.connect(self._size_columns_once)
        self._update_count()

    # --- filtering --------------------------------------------------------------
    def _filter_changed(self, text: str) -> None:
        self.proxy.set_filter_text(text)
        self._update_count()
        if not self.model.fully_loaded or self.model.state.query:
            self._server_filter.start()

    def _apply_server_filter(self) -> None:
        self.model.set_query(self.filter.text().strip())

    def focus_filter(self) -> None:
        self.filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter.selectAll()

    # --- counts and sizing --------------------------------------------------------
    def _update_count(self, *_: object) -> None:
        loaded = len(self.model.rows)  # rowCount() is what the filter lets through
        shown = self.proxy.rowCount()
        total = self.model.total
        parts = []
        if self.proxy.needle:
            parts.append(f"{shown:,} shown")
        if total is not None and total > loaded:
            parts.append(f"{loaded:,} of {total:,} loaded")
        else:
            parts.append(counted(loaded, self.one, self.noun))
        if self.model.loading:
            parts.append("loading…")
        text = " · ".join(parts)
        self.count.setText(text)
        self.count.setAccessibleDescription(text)

    def _size_columns_once(self) -> None:
        if self._sized or self.model.rowCount() == 0:
            return
        self._sized = True
        header = self.view.horizontalHeader()
        header.setResizeContentsPrecision(200)  # look at a few rows, not 100,000
        for column in range(self.model.columnCount() - 1):
            self.view.resizeColumnToContents(column)
            header.resizeSection(column, min(max(header.sectionSize(column) + 12, 60), 360))

    # --- selection ----------------------------------------------------------------
    def _selection_changed(self, *_: object) -> None:
        self.selectionChanged.emit()
        self._announce_current()

    def _announce_current(self, *_: object) -> None:
        row = self.current()
        key = self.view.selectionModel().currentIndex().data(KeyRole) if row is not None else None
        if key == self._announced:
            return
        self._announced = key
        self.currentChanged.emit(row)

    def _forget_current(self) -> None:
        # A new list: nothing is current, and the same key names another row now.
        if self._announced is not None:
            self._announced = None
            self.currentChanged.emit(None)

    def current(self) -> Any:
        index = self.view.selectionModel().currentIndex()
        if not index.isValid() or not self.view.selectionModel().isRowSelected(
            index.row(), index.parent()
        ):
            return None
        return index.data(ObjectRole)

    def selected(self) -> list[Any]:
        """The selected rows' objects, in the order the table shows them."""
        rows = sorted(i.row() for i in self.view.selectionModel().selectedRows())
        return [self.proxy.index(r, 0).data(ObjectRole) for r in rows]

    def selected_keys(self) -> list[Hashable]:
        rows = sorted(i.row() for i in self.view.selectionModel().selectedRows())
        return [self.proxy.index(r, 0).data(KeyRole) for r in rows]

    def select_keys(self, keys: Iterable[Hashable], *, current: Hashable | None = None) -> int:
        """Select the rows with these keys (those present); returns how many."""
        selection = QItemSelection()
        last_column = self.model.columnCount() - 1
        count = 0
        for key in keys:
            row = self.model.row_of(key)
            if row is None:
                continue
            proxy_row = self.proxy.mapFromSource(self.model.index(row, 0)).row()
            if proxy_row < 0:
                continue
            selection.select(
                self.proxy.index(proxy_row, 0), self.proxy.index(proxy_row, last_column)
            )
            count += 1
        flags = (
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows
        )
        model = self.view.selectionModel()
        model.select(selection, flags)
        if current is not None and (row := self.model.row_of(current)) is not None:
            index = self.proxy.mapFromSource(self.model.index(row, 0))
            model.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)
            self.view.scrollTo(index)
        return count

    def clear_selection(self) -> None:
        self.view.selectionModel().clearSelection()
