"""The table model every list in the window uses, and its filter proxy.

Rows are frozen dataclasses; columns are declared once (:class:`Column`) with how
to show, sort and explain each cell. Pages come from an async ``PageSource`` and
arrive through ``fetchMore`` (guarded: one page in flight at a time). Sorting is
done here in Python with a key per column (100,000 rows in tens of milliseconds),
not by the proxy calling ``data()`` per comparison (seconds); the proxy only
filters, against a lower-cased text per row computed once when rows arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)

from app.client.berth_api import Page
from app.client.errors import ClientError

T = TypeVar("T")
Index = QModelIndex | QPersistentModelIndex

SortRole = Qt.ItemDataRole.UserRole + 1
ObjectRole = Qt.ItemDataRole.UserRole + 2
KeyRole = Qt.ItemDataRole.UserRole + 3

PAGE_SIZE = 500
PageSource = Callable[[str | None, str | None, str | None, int], Awaitable[Page[Any]]]
Runner = Callable[..., Any]  # Operations.run


def _nothing(_row: Any) -> Any:
    return None


@dataclass(frozen=True)
class Column(Generic[T]):
    title: str
    text: Callable[[T], str]
    sort_key: Callable[[T], Any]
    tooltip: Callable[[T], str | None] = _nothing
    numeric: bool = False  # right-aligned
    server_sort: str | None = None  # the API's ?sort= field, if it has one
    description: str = ""  # header tooltip and accessible description


@dataclass
class _State:
    cursor: str | None = None
    more: bool = False
    loading: bool = False
    generation: int = 0
    total: int | None = None
    sort_column: int = -1
    descending: bool = False
    query: str = ""
    error: ClientError | None = None
    keep_rows: int = 0  # a refresh loads at least this many rows again
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class PagedTableModel(QAbstractTableModel, Generic[T]):
    """Rows of ``T`` loaded page by page from ``source`` (or set directly)."""

    loadingChanged = Signal(bool)
    loadFailed = Signal(object)  # ClientError
    pageLoaded = Signal()
    totalChanged = Signal()

    def __init__(
        self,
        columns: Sequence[Column[T]],
        key: Callable[[T], Hashable],
        *,
        search_text: Callable[[T], str],
        runner: Runner | None = None,
        name: str = "rows",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.key = key
        self.search_text = search_text
        self.runner = runner
        self.name = name
        self.source: PageSource | None = None
        self.rows: list[T] = []
        self.haystack: list[str] = []
        self._positions: dict[Hashable, int] = {}
        self.state = _State()
        self.page_size = PAGE_SIZE

    # --- Qt model ---------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole or role == Qt.ItemDataRole.AccessibleTextRole:
            return column.text(row)
        if role == Qt.ItemDataRole.ToolTipRole:
            return column.tooltip(row)
        if role == SortRole:
            return column.sort_key(row)
        if role == ObjectRole:
            return row
        if role == KeyRole:
            return self.key(row)
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        column = self.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.title
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleDescriptionRole):
            return column.description or column.title
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        if parent.isValid():
            return False
        return self.state.more and not self.state.loading and self.state.error is None

    def fetchMore(self, parent: Index = QModelIndex()) -> None:
        # Views call this from paint and scroll handlers, often several times per
        # frame: the loading flag keeps it to one request at a time.
        if not self.canFetchMore(parent):
            return
        self._start_load()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        descending = order == Qt.SortOrder.DescendingOrder
        if column == self.state.sort_column and descending == self.state.descending:
            return
        self.state.sort_column = column
        self.state.descending = descending
        server_field = self.columns[column].server_sort if 0 <= column < len(self.columns) else None
        if self.state.more and server_field is not None and self.source is not None:
            # Only part of the list is here: ask the server for the right first page.
            self.reload(keep_rows=len(self.rows))
        else:
            self._sort_rows()

    # --- loading ----------------------------------------------------------------
    @property
    def loading(self) -> bool:
        return self.state.loading

    @property
    def total(self) -> int | None:
        return self.state.total

    @property
    def fully_loaded(self) -> bool:
        return not self.state.more

    def set_source(self, source: PageSource | None) -> None:
        """Show a new list (``None``: an empty one) and load its first page."""
        self.source = source
        self.state.generation += 1
        self.state.cursor = None
        self.state.error = None
        self.state.total = None
        self._set_rows([])
        self.state.more = source is not None
        self._set_loading(False)
        self.totalChanged.emit()
        if source is not None:
            self._start_load()

    def reload(self, *, keep_rows: int = 0) -> None:
        """Load the list again from the first page (F5, a new sort or filter).
        Rows stay on screen until the first page replaces them."""
        if self.source is None:
            return
        self.state.generation += 1
        self.state.cursor = None
        self.state.error = None
        self.state.more = True
        self.state.keep_rows = keep_rows
        self._set_loading(False)
        self._start_load(replace=True)

    def set_query(self, text: str) -> None:
        """Server-side filter; only worth a request when not every row is here."""
        if text == self.state.query:
            return
        self.state.query = text
        self.reload()

    def _server_sort(self) -> str | None:
        column = self.state.sort_column
        if not 0 <= column < len(self.columns):
            return None
        field_ = self.columns[column].server_sort
        if field_ is None:
            return None
        return f"-{field_}" if self.state.descending else field_

    def _set_loading(self, loading: bool) -> None:
        if loading != self.state.loading:
            self.state.loading = loading
            self.loadingChanged.emit(loading)
            if not loading:
                waiters, self.state.waiters = self.state.waiters, []
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)

    def _start_load(self, *, replace: bool = False) -> None:
        assert self.runner is not None, "a paged model needs a runner"
        self._set_loading(True)
        self.runner(
            self._load(self.state.generation, replace),
            name=f"{self.name}-page",
            on_error=self._failed,
        )

    async def _load(self, generation: int, replace: bool) -> None:
        try:
            source = self.source
            assert source is not None
            page = await source(
                self.state.cursor, self._server_sort(), self.state.query or None, self.page_size
            )
            if generation != self.state.generation:
                return  # a newer list was asked for meanwhile
            collected = list(page.items)
            # A refresh brings back as many rows as were on screen, so the selection
            # and scroll position survive it.
            while replace and len(collected) < self.state.keep_rows and page.next_cursor:
                page = await source(
                    page.next_cursor,
                    self._server_sort(),
                    self.state.query or None,
                    self.page_size,
                )
                if generation != self.state.generation:
                    return
                collected.extend(page.items)
            self.state.cursor = page.next_cursor
            self.state.more = bool(page.next_cursor) and bool(page.items)
            if self.state.total != page.total:
                self.state.total = page.total
                self.totalChanged.emit()
            if replace:
                self._replace_rows(collected)
            else:
                self._append_rows(collected)
        finally:
            if generation == self.state.generation:
                self._set_loading(False)
        self.pageLoaded.emit()

    def _failed(self, error: ClientError) -> bool:
        self.state.error = error
        self.state.more = False
        self._set_loading(False)
        self.loadFailed.emit(error)
        return False  # still reported through the one place (the error bar)

    async def wait_loaded(self) -> None:
        """Wait until no page is in flight (for callers that need every row)."""
        while self.state.loading:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.state.waiters.append(fut)
            await fut

    async def load_all(self) -> None:
        while True:
            await self.wait_loaded()
            if not self.canFetchMore():
                return
            self.fetchMore()

    # --- rows -------------------------------------------------------------------
    def _index_rows(self) -> None:
        self._positions = {self.key(r): i for i, r in enumerate(self.rows)}

    def _set_rows(self, rows: list[T]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.haystack = [self.search_text(r).lower() for r in rows]
        self._index_rows()
        self.endResetModel()

    def set_rows(self, rows: Iterable[T]) -> None:
        """Show rows that need no loading (details lists, benchmarks)."""
        self.source = None
        self.state.generation += 1
        self.state.more = False
        self.state.error = None
        self._set_rows(list(rows))
        self._sort_rows()
        self.state.total = len(self.rows)
        self.totalChanged.emit()

    def _replace_rows(self, rows: list[T]) -> None:
        """New contents for a refresh: rows with the same key keep their place in
        the selection (persistent indexes follow them)."""
        if not self.rows:
            self._append_rows(rows)
            return
        self.layoutAboutToBeChanged.emit()
        old_rows = self.rows
        persistent = self.persistentIndexList()
        self.rows = rows
        self.haystack = [self.search_text(r).lower() for r in rows]
        self._index_rows()
        self._sort_in_place()
        new_from = []
        for idx in persistent:
            key = self.key(old_rows[idx.row()]) if 0 <= idx.row() < len(old_rows) else None
            new_row = self._positions.get(key) if key is not None else None
            new_from.append(
                self.index(new_row, idx.column()) if new_row is not None else QModelIndex()
            )
        self.changePersistentIndexList(persistent, new_from)
        self.layoutChanged.emit()

    def _append_rows(self, rows: list[T]) -> None:
        fresh = [r for r in rows if self.key(r) not in self._positions]
        if not fresh:
            return
        start = len(self.rows)
        self.beginInsertRows(QModelIndex(), start, start + len(fresh) - 1)
        self.rows.extend(fresh)
        self.haystack.extend(self.search_text(r).lower() for r in fresh)
        for i, r in enumerate(fresh, start):
            self._positions[self.key(r)] = i
        self.endInsertRows()
        if self.state.sort_column >= 0 and self._server_sort() is None:
            self._sort_rows()  # the server cannot sort on this column: keep order here

    def _sort_in_place(self) -> None:
        column = self.state.sort_column
        if not 0 <= column < len(self.columns):
            return
        key = self.columns[column].sort_key
        order = sorted(
            range(len(self.rows)),
            key=lambda i: key(self.rows[i]),
            reverse=self.state.descending,
        )
        self.rows = [self.rows[i] for i in order]
        self.haystack = [self.haystack[i] for i in order]
        self._index_rows()

    def _sort_rows(self) -> None:
        if not 0 <= self.state.sort_column < len(self.columns) or not self.rows:
            return
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        keys = [self.key(self.rows[p.row()]) if p.row() >= 0 else None for p in persistent]
        self._sort_in_place()
        self.changePersistentIndexList(
            persistent,
            [
                self.index(self._positions[k], p.column()) if k is not None else QModelIndex()
                for k, p in zip(keys, persistent, strict=True)
            ],
        )
        self.layoutChanged.emit()

    def row_of(self, key: Hashable) -> int | None:
        return self._positions.get(key)

    def row_object(self, row: int) -> T:
        return self.rows[row]

    def remove_keys(self, keys: Iterable[Hashable]) -> int:
        """Take rows out in place (after a delete); returns how many went."""
        rows = sorted((self._positions[k] for k in keys if k in self._positions), reverse=True)
        if not rows:
            return 0
        # Remove contiguous runs from the bottom up, so earlier indexes stay valid.
        runs: list[tuple[int, int]] = []
        for r in rows:
            if runs and runs[-1][0] == r + 1:
                runs[-1] = (r, runs[-1][1])
            else:
                runs.append((r, r))
        for first, last in runs:
            self.beginRemoveRows(QModelIndex(), first, last)
            del self.rows[first : last + 1]
            del self.haystack[first : last + 1]
            self.endRemoveRows()
        self._index_rows()
        if self.state.total is not None:
            self.state.total = max(0, self.state.total - len(rows))
            self.totalChanged.emit()
        return len(rows)

    def replace_row(self, row: T) -> None:
        """Update one row in place (new counts after a delete)."""
        position = self._positions.get(self.key(row))
        if position is None:
            return
        self.rows[position] = row
        self.haystack[position] = self.search_text(row).lower()
        self.dataChanged.emit(self.index(position, 0), self.index(position, len(self.columns) - 1))


class FilterProxy(QSortFilterProxyModel):
    """Filters as you type on the source's search text; sorting is delegated to the
    source (see the module docstring)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._needle = ""
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder

    def paged(self) -> PagedTableModel[Any]:
        model = self.sourceModel()
        assert isinstance(model, PagedTableModel)
        return model

    @property
    def needle(self) -> str:
        return self._needle

    def set_filter_text(self, text: str) -> None:
        needle = text.strip().lower()
        if needle == self._needle:
            return
        self.beginFilterChange()
        self._needle = needle
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not self._needle:
            return True
        return self._needle in self.paged().haystack[source_row]

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort_column = column
        self._sort_order = order
        self.paged().sort(column, order)

    def sortColumn(self) -> int:
        return self._sort_column

    def sortOrder(self) -> Qt.SortOrder:
        return self._sort_order
