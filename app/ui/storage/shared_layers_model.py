"""The shared-layers tree: blobs two or more images reference (digest, size, how
many images), each expandable to the images that reference it.

Layers come page by page from the server (:meth:`SharedLayersModel.load_more`,
guarded: one page in flight), largest first. Not through ``fetchMore``: QTreeView
fetches more from the root each time it lays out its rows (and it lays out after
every insert), so a lazily fetched root would be read to the end at once, 10,000
layers in 50 requests; the panel asks for a page when the view is scrolled near
the end instead. Sorting on size or image count asks the server for the new
order; sorting on digest orders what is loaded. Filtering to one repository is
a new source. Children are the images the server lists for the layer (at most 50,
only those the caller may read), plus a row saying how many more reference it.

Index ids: a layer row has internal id 0; an image row has its layer's row + 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from app.client.berth_api import Page, SharedLayer
from app.client.errors import ClientError
from app.ui.common.formatting import counted, exact_bytes, format_bytes, short_digest
from app.ui.common.table_model import ObjectRole, Runner, SortRole

Index = QModelIndex | QPersistentModelIndex
LayerSource = Callable[[str | None, str | None, int], Awaitable[Page[SharedLayer]]]

DIGEST, SIZE, IMAGES = range(3)
HEADERS = ("Layer digest", "Size", "Images")
DESCRIPTIONS = (
    "The blob's digest; expand to see the images that reference it",
    "Bytes stored once however many images reference it",
    "How many images reference this blob",
)
SERVER_SORT = {SIZE: "size", IMAGES: "image_count"}
PAGE_SIZE = 200


@dataclass(frozen=True, slots=True)
class ImageRow:
    """A child row: an image referencing the layer, or (``image_id`` None) the note
    that more images do than are listed."""

    image_id: int | None
    text: str


def _children(layer: SharedLayer) -> list[ImageRow]:
    rows = [ImageRow(image_id, name) for image_id, name in layer.images]
    hidden = layer.image_count - len(rows)
    if hidden > 0:
        rows.append(ImageRow(None, f"… and {hidden:,} more not listed"))
    return rows


class SharedLayersModel(QAbstractItemModel):
    loadingChanged = Signal(bool)
    loadFailed = Signal(object)  # ClientError
    pageLoaded = Signal()
    totalChanged = Signal()

    def __init__(self, runner: Runner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.source: LayerSource | None = None
        self.layers: list[SharedLayer] = []
        self.images: list[list[ImageRow]] = []
        self.total: int | None = None
        self.cursor: str | None = None
        self.more = False
        self.loading = False
        self.error: ClientError | None = None
        self.generation = 0
        self.sort_column = SIZE
        self.descending = True
        self.page_size = PAGE_SIZE

    # --- structure ----------------------------------------------------------------
    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        if column < 0 or column >= len(HEADERS) or row < 0:
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0) if row < len(self.layers) else QModelIndex()
        if parent.internalId() != 0 or parent.row() >= len(self.layers):
            return QModelIndex()
        if row >= len(self.images[parent.row()]):
            return QModelIndex()
        return self.createIndex(row, column, parent.row() + 1)

    def parent(self, child: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not child.isValid() or child.internalId() == 0:
            return QModelIndex()
        return self.createIndex(child.internalId() - 1, 0, 0)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        if not parent.isValid():
            return len(self.layers)
        if parent.internalId() == 0 and parent.column() == 0 and parent.row() < len(self.images):
            return len(self.images[parent.row()])
        return 0

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return len(HEADERS)

    def hasChildren(self, parent: Index = QModelIndex()) -> bool:
        return self.rowCount(parent) > 0

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleDescriptionRole):
            return DESCRIPTIONS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole and section != DIGEST:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if index.internalId() == 0:
            if index.row() >= len(self.layers):
                return None
            return self._layer_data(self.layers[index.row()], index.column(), role)
        parent_row = index.internalId() - 1
        if parent_row >= len(self.images) or index.row() >= len(self.images[parent_row]):
            return None
        child = self.images[parent_row][index.row()]
        if index.column() != DIGEST:
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return child.text
        if role == Qt.ItemDataRole.ToolTipRole:
            if child.image_id is None:
                return "Images you may not read, or beyond the first 50, are not listed"
            return f"{child.text} (image id {child.image_id})"
        if role == ObjectRole:
            return child
        if role == SortRole:
            return child.text
        return None

    def _layer_data(self, layer: SharedLayer, column: int, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            texts = (short_digest(layer.digest), format_bytes(layer.size), f"{layer.image_count:,}")
            return texts[column]
        if role == Qt.ItemDataRole.AccessibleTextRole:  # a screen reader reads it whole
            texts = (layer.digest, format_bytes(layer.size), counted(layer.image_count, "image"))
            return texts[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == DIGEST:
                return layer.digest
            if column == SIZE:
                return (
                    f"{exact_bytes(layer.size)}, stored once for "
                    f"{counted(layer.image_count, 'image')}"
                )
            verb = "references" if layer.image_count == 1 else "reference"
            return f"{counted(layer.image_count, 'image')} {verb} this layer"
        if role == SortRole:
            return (layer.digest, layer.size, layer.image_count)[column]
        if role == ObjectRole:
            return layer
        if role == Qt.ItemDataRole.TextAlignmentRole and column != DIGEST:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    # --- paging -------------------------------------------------------------------
    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        return False  # views would read every page (see the module docstring)

    @property
    def can_load_more(self) -> bool:
        return self.more and not self.loading and self.error is None

    def load_more(self) -> None:
        """The next page, unless one is in flight or there is none."""
        if self.can_load_more:
            self._start(replace=False)

    def set_source(self, source: LayerSource | None) -> None:
        """Show another list (another workspace or repository filter)."""
        self.source = source
        self.generation += 1
        self.beginResetModel()
        self.layers, self.images = [], []
        self.endResetModel()
        self.cursor, self.error, self.total = None, None, None
        self.more = source is not None
        self._set_loading(False)
        self.totalChanged.emit()
        if source is not None:
            self._start(replace=False)

    def reload(self) -> None:
        """Read the list again (the server says something changed); as many rows as
        are loaded come back, so the scroll position survives."""
        if self.source is None:
            return
        self.generation += 1
        self.cursor, self.error, self.more = None, None, True
        self._set_loading(False)
        self._start(replace=True)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        descending = order == Qt.SortOrder.DescendingOrder
        if (column, descending) == (self.sort_column, self.descending):
            return
        self.sort_column, self.descending = column, descending
        if column in SERVER_SORT and self.source is not None:
            self.reload()
        else:
            self._sort_loaded()

    @property
    def server_sort(self) -> str | None:
        name = SERVER_SORT.get(self.sort_column)
        if name is None:
            return None
        return f"-{name}" if self.descending else name

    def _set_loading(self, loading: bool) -> None:
        if loading != self.loading:
            self.loading = loading
            self.loadingChanged.emit(loading)

    def _start(self, *, replace: bool) -> None:
        self._set_loading(True)
        generation = self.generation
        task: asyncio.Task[None] = self.runner(
            self._load(generation, replace, len(self.layers) if replace else 0),
            name="shared-layers-page",
            on_error=self._failed,
        )

        def stopped(task: asyncio.Task[None]) -> None:
            # Cancelled from outside (perhaps before it ran at all: the window is
            # closing): no longer loading, and no paging until asked again.
            if task.cancelled() and generation == self.generation:
                self.more = False
                self._set_loading(False)

        task.add_done_callback(stopped)

    async def _load(self, generation: int, replace: bool, keep: int) -> None:
        source = self.source
        assert source is not None
        try:
            page = await source(self.cursor, self.server_sort, self.page_size)
            collected = list(page.items)
            while len(collected) < keep and page.next_cursor and generation == self.generation:
                page = await source(page.next_cursor, self.server_sort, self.page_size)
                collected.extend(page.items)
            if generation != self.generation:
                return  # a newer list was asked for meanwhile
            self.cursor = page.next_cursor
            self.more = bool(page.next_cursor) and bool(page.items)
            if page.total != self.total:
                self.total = page.total
                self.totalChanged.emit()
            if replace:
                self._replace(collected)
            else:
                self._append(collected)
        finally:
            if generation == self.generation:
                self._set_loading(False)
        self.pageLoaded.emit()

    def _failed(self, error: ClientError) -> bool:
        self.error = error
        self.more = False
        self._set_loading(False)
        self.loadFailed.emit(error)
        return False  # still reported in the one place (the error bar)

    # --- rows ---------------------------------------------------------------------
    def _append(self, layers: list[SharedLayer]) -> None:
        known = {layer.digest for layer in self.layers}
        fresh = [layer for layer in layers if layer.digest not in known]
        if not fresh:
            return
        start = len(self.layers)
        self.beginInsertRows(QModelIndex(), start, start + len(fresh) - 1)
        self.layers.extend(fresh)
        self.images.extend(_children(layer) for layer in fresh)
        self.endInsertRows()
        if self.sort_column not in SERVER_SORT:
            self._sort_loaded()

    def _replace(self, layers: list[SharedLayer]) -> None:
        if [layer.digest for layer in layers] == [layer.digest for layer in self.layers]:
            changed = [
                i for i, (a, b) in enumerate(zip(self.layers, layers, strict=True)) if a != b
            ]
            for row in changed:
                old_children = len(self.images[row])
                new_children = _children(layers[row])
                parent = self.index(row, 0)
                # Children may differ in number: tell views row by row.
                if len(new_children) < old_children:
                    self.beginRemoveRows(parent, len(new_children), old_children - 1)
                    self.layers[row], self.images[row] = layers[row], new_children
                    self.endRemoveRows()
                elif len(new_children) > old_children:
                    self.beginInsertRows(parent, old_children, len(new_children) - 1)
                    self.layers[row], self.images[row] = layers[row], new_children
                    self.endInsertRows()
                else:
                    self.layers[row], self.images[row] = layers[row], new_children
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(HEADERS) - 1))
                if new_children:
                    self.dataChanged.emit(
                        self.index(0, 0, parent), self.index(len(new_children) - 1, 0, parent)
                    )
            return
        # Layers came or went: start over (the view restores expansion by digest).
        self.beginResetModel()
        self.layers = list(layers)
        self.images = [_children(layer) for layer in layers]
        self.endResetModel()
        if self.sort_column not in SERVER_SORT:
            self._sort_loaded()

    def _sort_loaded(self) -> None:
        if self.sort_column in SERVER_SORT or not self.layers:
            return
        self.layoutAboutToBeChanged.emit()
        old_rows = {layer.digest: row for row, layer in enumerate(self.layers)}
        persistent = self.persistentIndexList()
        order = sorted(self.layers, key=lambda layer: layer.digest, reverse=self.descending)
        self.layers = order
        self.images = [_children(layer) for layer in order]
        new_rows = {layer.digest: row for row, layer in enumerate(order)}
        moved = {old_rows[d]: new_rows[d] for d in new_rows}
        updated = []
        for idx in persistent:
            if idx.internalId() == 0:
                updated.append(self.createIndex(moved[idx.row()], idx.column(), 0))
            else:
                parent_row = moved[idx.internalId() - 1]
                updated.append(self.createIndex(idx.row(), idx.column(), parent_row + 1))
        self.changePersistentIndexList(persistent, updated)
        self.layoutChanged.emit()

    def row_of(self, digest: str) -> int | None:
        return next((i for i, layer in enumerate(self.layers) if layer.digest == digest), None)
