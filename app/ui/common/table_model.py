"""The table model every list in the window uses, and its proxy.

Rows are frozen dataclasses; columns are declared once (:class:`Column`) with how
to show, sort and explain each cell. Pages come from an async ``PageSource`` and
arrive through ``fetchMore`` (guarded: one page in flight at a time).

At 100,000 rows, one Python call per row from C++ costs more than the whole job
done in bulk, so the model both sorts and filters its own rows:

* sorting computes one key per row and sorts the row numbers on them (tens of
  milliseconds), instead of the proxy calling ``data()`` per comparison (seconds);
* filtering keeps the row numbers whose lower-cased search text (computed once,
  when a row arrives) contains the filter text, found in one pass when the text
  changes; the model then shows only those rows. The :class:`FilterProxy` stays in
  the chain (views, selection, a stable seam) but has no Python
  ``filterAcceptsRow``: Qt's own accepts every row in C++.

Both announce themselves as a layout change and move the persistent indexes by
row key, so the selected rows that stay visible stay selected. ``rows`` holds
every loaded row (in the order shown), ``rowCount()`` only those the filter lets
through.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
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
RESORT_DELAY_MS = 100  # rows whose sort value changed are sorted again after this
_GONE: Hashable = object()  # the key of a row no longer shown
_FEW = 16  # rows to find one by one after a sort (more: one pass over all)
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
    # The server's order for this column is only close to the table's (tag names:
    # the registry pages them in lexical order, the table shows them in natural
    # order): loaded rows are sorted here too, as pages arrive.
    sort_here_too: bool = False
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
        # The sort fields the source can order by (None: every column's server_sort).
        self.server_fields: frozenset[str] | None = None
        self.rows: list[T] = []  # every loaded row, in the order shown
        self.haystack: list[str] = []  # lower-cased search text of each row
        self._keys: list[Hashable] = []  # key of each row
        self._positions: dict[Hashable, int] | None = {}  # key → index in rows; None: stale
        self._needle = ""
        # Indexes into rows of the rows the filter lets through, ascending; None: all.
        self._visible: list[int] | None = None
        self._resort_timer: QTimer | None = None
        self._sort_ms = 0.0  # how long the last sort took
        self.state = _State()
        self.page_size = PAGE_SIZE

    # --- Qt model ---------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        if parent.isValid():
            return 0
        return len(self.rows) if self._visible is None else len(self._visible)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        position = index.row()
        if self._visible is not None:
            if position >= len(self._visible):
                return None
            position = self._visible[position]
        elif position >= len(self.rows):
            return None
        row = self.rows[position]
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
            return self._keys[position]
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
        before = self._server_sort()
        self.state.sort_column = column
        self.state.descending = descending
        if self.state.more and self.source is not None and self._server_sort() != before:
            # Only part of the list is here and the server orders it differently now
            # (or no longer can, and its cursor belongs to the old order): ask again
            # from the first page. Rows it cannot order are sorted here as they come.
            self.reload(keep_rows=len(self.rows))
        else:
            self._sort_rows()

    # --- filtering --------------------------------------------------------------
    @property
    def needle(self) -> str:
        return self._needle

    def set_filter(self, text: str) -> None:
        """Show only the rows whose search text contains ``text`` (any case)."""
        needle = text.strip().lower()
        if needle == self._needle:
            return
        narrower = bool(self._needle) and self._needle in needle
        previous = self._visible

        def change() -> None:
            self._needle = needle
            if narrower and previous is not None:
                # Typing on: only the rows shown now can still match.
                hay = self.haystack
                self._visible = [i for i in previous if needle in hay[i]]
            else:
                self._visible = self._matching()

        self._relayout(change)

    def _matching(self) -> list[int] | None:
        needle = self._needle
        if not needle:
            return None
        return [i for i, text in enumerate(self.haystack) if needle in text]

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

    def set_source(
        self, source: PageSource | None, *, server_sort: Collection[str] | None = None
    ) -> None:
        """Show a new list (``None``: an empty one) and load its first page.
        ``server_sort``: the sort fields ``source`` can order by (a backend's
        ``Capabilities.server_sort``); None trusts each column's ``server_sort``.
        The others are sorted here once their rows arrive."""
        self.source = source
        self.server_fields = frozenset(server_sort) if server_sort is not None else None
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
        if field_ is None or (self.server_fields is not None and field_ not in self.server_fields):
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
    def _index(self) -> dict[Hashable, int]:
        if self._positions is None:
            self._positions = dict(zip(self._keys, range(len(self._keys)), strict=True))
        return self._positions

    def _shown_at(self, position: int) -> int | None:
        """The view row of ``rows[position]``, or None when the filter hides it."""
        visible = self._visible
        if visible is None:
            return position
        found = bisect_left(visible, position)
        return found if found < len(visible) and visible[found] == position else None

    def _shown_rows(self, wanted: set[Hashable]) -> dict[Hashable, int]:
        """Key → view row of the shown rows with these keys."""
        if not wanted:
            return {}
        keys = self._keys
        positions: dict[Hashable, int] = {}
        if self._positions is not None:
            positions = {k: self._positions[k] for k in wanted if k in self._positions}
        elif len(wanted) <= _FEW:
            # Just sorted (no index yet) and a selection of a few rows: a search in C
            # per row beats a pass in Python over every row.
            for key in wanted:
                with contextlib.suppress(ValueError):
                    positions[key] = keys.index(key)
        elif self._visible is None:
            return {k: i for i, k in enumerate(keys) if k in wanted}
        else:
            return {keys[p]: i for i, p in enumerate(self._visible) if keys[p] in wanted}
        out = {}
        for key, position in positions.items():
            shown = self._shown_at(position)
            if shown is not None:
                out[key] = shown
        return out

    def _relayout(self, change: Callable[[], object]) -> None:
        """Apply ``change`` (a new order, filter or set of rows) as a layout change;
        the persistent indexes (selection, current row) follow their rows' keys."""
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        before = [self._key_shown_at(p.row()) for p in persistent]
        change()
        if persistent:
            after = self._shown_rows({k for k in before if k is not _GONE})
            self.changePersistentIndexList(
                persistent,
                [
                    self.createIndex(after[k], p.column()) if k in after else QModelIndex()
                    for k, p in zip(before, persistent, strict=True)
                ],
            )
        self.layoutChanged.emit()

    def _key_shown_at(self, row: int) -> Hashable:
        visible = self._visible
        if visible is not None:
            return self._keys[visible[row]] if 0 <= row < len(visible) else _GONE
        return self._keys[row] if 0 <= row < len(self._keys) else _GONE

    def _take(self, rows: list[T]) -> None:
        """Make ``rows`` the loaded rows (sorted, filtered); no signals."""
        self.rows = rows
        self.haystack = [self.search_text(r).lower() for r in rows]
        self._keys = [self.key(r) for r in rows]
        self._positions = None
        if not self._sort_in_place():
            self._visible = self._matching()

    def _set_rows(self, rows: list[T]) -> None:
        self.beginResetModel()
        self._take(rows)
        self.endResetModel()

    def set_rows(self, rows: Iterable[T]) -> None:
        """Show rows that need no loading (details lists, benchmarks)."""
        self.source = None
        self.state.generation += 1
        self.state.more = False
        self.state.error = None
        self._set_rows(list(rows))
        self.state.total = len(self.rows)
        self.totalChanged.emit()

    def _replace_rows(self, rows: list[T]) -> None:
        """New contents for a refresh: rows with the same key keep their place in
        the selection (persistent indexes follow them)."""
        if not self.rows:
            self._append_rows(rows)
            return
        self._relayout(lambda: self._take(rows))

    def _append_rows(self, rows: list[T]) -> None:
        known = self._index()
        fresh: list[T] = []
        fresh_keys: list[Hashable] = []
        for row in rows:
            key = self.key(row)
            if key not in known:
                fresh.append(row)
                fresh_keys.append(key)
        if not fresh:
            return
        start = len(self.rows)
        hay = [self.search_text(r).lower() for r in fresh]
        needle = self._needle
        shown = [i for i, text in enumerate(hay, start) if needle in text] if needle else None
        first = self.rowCount()
        count = len(fresh) if shown is None else len(shown)
        if count:
            self.beginInsertRows(QModelIndex(), first, first + count - 1)
        self.rows.extend(fresh)
        self.haystack.extend(hay)
        self._keys.extend(fresh_keys)
        known.update(zip(fresh_keys, range(start, start + len(fresh)), strict=True))
        if shown is not None and self._visible is not None:
            self._visible.extend(shown)
        if count:
            self.endInsertRows()
        column = self.state.sort_column
        if column >= 0 and (self._server_sort() is None or self.columns[column].sort_here_too):
            self._sort_rows()  # the server cannot sort (exactly) on this column

    def _sort_in_place(self) -> bool:
        """Order the rows by the sort column (and filter them again); False when
        there is nothing to sort by."""
        column = self.state.sort_column
        if not 0 <= column < len(self.columns):
            return False
        self._cancel_resort()
        rows = self.rows
        keys = list(map(self.columns[column].sort_key, rows))
        order = sorted(range(len(rows)), key=keys.__getitem__, reverse=self.state.descending)
        self.rows = list(map(rows.__getitem__, order))
        self.haystack = list(map(self.haystack.__getitem__, order))
        self._keys = list(map(self._keys.__getitem__, order))
        self._positions = None
        self._visible = self._matching()
        return True

    def _sort_rows(self) -> None:
        if not 0 <= self.state.sort_column < len(self.columns) or not self.rows:
            return
        started = time.perf_counter()
        self._relayout(self._sort_in_place)
        self._sort_ms = (time.perf_counter() - started) * 1000

    def _resort_later(self) -> None:
        """Sort again soon: a row's sort value changed (details that arrived, new
        counts after a delete). Batched: many changes, one sort, and sorts of a long
        list spaced out so they never take more than a sixth of the time."""
        if self._resort_timer is None:
            self._resort_timer = QTimer(self)
            self._resort_timer.setSingleShot(True)
            self._resort_timer.timeout.connect(self._sort_rows)
        if not self._resort_timer.isActive():
            self._resort_timer.setInterval(max(RESORT_DELAY_MS, round(5 * self._sort_ms)))
            self._resort_timer.start()

    def _cancel_resort(self) -> None:
        if self._resort_timer is not None:
            self._resort_timer.stop()

    @property
    def resort_pending(self) -> bool:
        return self._resort_timer is not None and self._resort_timer.isActive()

    def row_of(self, key: Hashable) -> int | None:
        """The row the view model shows ``key`` at (None: not loaded, or filtered out)."""
        position = self._index().get(key)
        return self._shown_at(position) if position is not None else None

    def row_object(self, row: int) -> T:
        """The object of view row ``row``."""
        return self.rows[self._visible[row] if self._visible is not None else row]

    def remove_keys(self, keys: Iterable[Hashable]) -> int:
        """Take rows out in place (after a delete); returns how many went."""
        known = self._index()
        gone = sorted({known[k] for k in keys if k in known}, reverse=True)
        if not gone:
            return 0
        # Remove contiguous runs from the bottom up, so earlier indexes stay valid.
        if self._visible is None:
            for first, last in _runs(gone):
                self.beginRemoveRows(QModelIndex(), first, last)
                del self.rows[first : last + 1]
                del self.haystack[first : last + 1]
                del self._keys[first : last + 1]
                self.endRemoveRows()
        else:
            # The view loses the shown ones first (the rows stay until it has)...
            shown = [s for s in map(self._shown_at, gone) if s is not None]
            for first, last in _runs(shown):
                self.beginRemoveRows(QModelIndex(), first, last)
                del self._visible[first : last + 1]
                self.endRemoveRows()
            # ...then every one goes, hidden or not; the filter is the same.
            for first, last in _runs(gone):
                del self.rows[first : last + 1]
                del self.haystack[first : last + 1]
                del self._keys[first : last + 1]
            self._visible = self._matching()
        self._positions = None
        if self.state.total is not None:
            self.state.total = max(0, self.state.total - len(gone))
            self.totalChanged.emit()
        return len(gone)

    def replace_row(self, row: T) -> None:
        """Update one row in place (new counts after a delete, details that arrived):
        shown or hidden again by the filter, sorted again (soon) if its sort value
        changed."""
        position = self._index().get(self.key(row))
        if position is None:
            return
        old = self.rows[position]
        self.rows[position] = row
        text = self.search_text(row).lower()
        self.haystack[position] = text
        column = self.state.sort_column
        if 0 <= column < len(self.columns):
            sort_key = self.columns[column].sort_key
            if sort_key(old) != sort_key(row):
                self._resort_later()
        visible = self._visible
        if visible is None:
            self._row_changed(position)
            return
        at = bisect_left(visible, position)
        shown = at < len(visible) and visible[at] == position
        if self._needle in text:
            if shown:
                self._row_changed(at)
            else:
                self.beginInsertRows(QModelIndex(), at, at)
                visible.insert(at, position)
                self.endInsertRows()
        elif shown:
            self.beginRemoveRows(QModelIndex(), at, at)
            del visible[at]
            self.endRemoveRows()

    def _row_changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))


def _runs(descending: Sequence[int]) -> list[tuple[int, int]]:
    """(first, last) of each run of consecutive numbers, from the bottom up."""
    runs: list[tuple[int, int]] = []
    for n in descending:
        if runs and runs[-1][0] == n + 1:
            runs[-1] = (n, runs[-1][1])
        else:
            runs.append((n, n))
    return runs


class FilterProxy(QSortFilterProxyModel):
    """The proxy between a :class:`PagedTableModel` and its view. Both filtering and
    sorting are the source's (see the module docstring): this passes its rows
    through, with Qt's C++ ``filterAcceptsRow`` (no Python call per row)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder

    def paged(self) -> PagedTableModel[Any]:
        model = self.sourceModel()
        assert isinstance(model, PagedTableModel)
        return model

    @property
    def needle(self) -> str:
        return self.paged().needle

    def set_filter_text(self, text: str) -> None:
        self.paged().set_filter(text)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort_column = column
        self._sort_order = order
        self.paged().sort(column, order)

    def sortColumn(self) -> int:
        return self._sort_column

    def sortOrder(self) -> Qt.SortOrder:
        return self._sort_order
