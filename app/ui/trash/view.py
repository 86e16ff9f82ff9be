"""The Recently deleted tab: the trash of the scope the navigator shows, a filter,
drag-selected rows restored with a result per entry, and *Empty trash…* for admins
(greyed with the reason for others: the server refuses them anyway)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Qt, QTimer
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.client.berth_api import BerthApi
from app.client.errors import ClientError
from app.client.events import ServerEvent
from app.client.trash import RestoreResult, TrashEntry
from app.core.permissions import Permission
from app.ui.backends.protocol import Backend, Scope
from app.ui.common.dialogs import ask
from app.ui.common.formatting import counted, format_bytes
from app.ui.common.window import Window
from app.ui.trash.model import ObjectRole, SortRole, TrashModel, what_text

TITLE = "Recently deleted"
DESCRIPTION = "Deleted tags and images, restorable until their trash entries expire"
PAGE = 1000
NO_TRASH = "This registry keeps no trash: deletes are final."
# The workspace's events that change a trash: what was deleted, restored, expired or
# emptied, here or anywhere else.
TRASH_EVENTS = frozenset({"trashed", "restored", "trash_expired", "trash_emptied"})
SETTLE_MS = 250  # the events of one action (a bulk delete) arrive within this
OPERATIONS = ("trash", "trash-restore", "trash-empty")  # this view's, by name


def berth_api(backend: Backend | None) -> BerthApi | None:
    """The management API behind ``backend`` (a Berth registry), else None."""
    api = getattr(backend, "api", None)
    return api if isinstance(api, BerthApi) else None


def entry_ids(value: Any) -> set[int]:
    """The entry ids an event names (``restored`` lists entries, the others ids)."""
    ids: set[int] = set()
    for item in value if isinstance(value, list) else []:
        found = item.get("id") if isinstance(item, dict) else item
        if isinstance(found, int) and not isinstance(found, bool):
            ids.add(found)
    return ids


def result_line(entry: TrashEntry | None, result: RestoreResult) -> str:
    what = what_text(entry) if entry is not None else f"entry {result.id}"
    if result.restored:
        return f"{what}: restored"
    return f"{what}: not restored: {result.message or result.status}"


def empty_text(scope: Scope, count: int, freed: int) -> str:
    return (
        f"Empty the trash of {scope.label}? {counted(count, 'entry', 'entries')} can no "
        f"longer be restored, and garbage collection will then free {format_bytes(freed)} "
        "that only they hold."
    )


async def confirm_empty(parent: QWidget | None, text: str) -> bool:
    """Ask before emptying the trash. The seam tests may patch; True means empty."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Empty trash", text, parent=parent)
    box.setAccessibleName("Empty trash")
    box.setAccessibleDescription(text)
    empty = box.addButton("Empty trash", QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    try:
        accepted = await ask(box)
        return accepted or box.clickedButton() is empty
    finally:
        box.deleteLater()


class TrashView(QWidget):
    def __init__(self, window: Window) -> None:
        super().__init__()
        self.main = window
        self.setAccessibleName(TITLE)
        self.setAccessibleDescription(DESCRIPTION)
        self.scope: Scope | None = None
        self.admin_reason: str | None = "Not connected"
        self.in_trash = 0  # unreferenced bytes the scope's trash holds (the server's)
        self._fit_pending = False  # rows came in while hidden: fit the columns when shown
        layout = QVBoxLayout(self)
        self.title = QLabel(TITLE, self)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        layout.addWidget(self.title)

        bar = QHBoxLayout()
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter recently deleted")
        self.filter.setAccessibleName("Filter recently deleted")
        self.filter.setAccessibleDescription("Shows only the entries whose text contains this")
        self.filter.setClearButtonEnabled(True)
        bar.addWidget(self.filter, 1)
        self.restore_button = QPushButton("&Restore", self)
        self.restore_button.setAccessibleDescription("Restore the selected entries")
        bar.addWidget(self.restore_button)
        self.empty_button = QPushButton("&Empty trash…", self)
        self.empty_button.setAccessibleDescription(
            "Make the entries shown final; garbage collection then frees what they hold"
        )
        bar.addWidget(self.empty_button)
        layout.addLayout(bar)

        self.model = TrashModel()
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SortRole)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.view = QTableView(self)
        self.view.setModel(self.proxy)
        self.view.setAccessibleName("Recently deleted entries")
        self.view.setAccessibleDescription("What was deleted, by whom, when, and until when")
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # the server's order
        self.view.verticalHeader().hide()
        # One line a row: a long "tag → digest (now …)" must not wrap the dates beside it.
        self.view.setWordWrap(False)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.view.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.view, 1)

        self.results = QPlainTextEdit(self)
        self.results.setReadOnly(True)
        self.results.setAccessibleName("Restore results")
        self.results.setAccessibleDescription("One line per entry: restored, or why not")
        self.results.setMaximumHeight(90)
        self.results.hide()
        layout.addWidget(self.results)

        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.view.selectionModel().selectionChanged.connect(self.update_buttons)
        self.proxy.modelReset.connect(self.update_buttons)
        self.proxy.rowsRemoved.connect(self.update_buttons)
        self.restore_button.clicked.connect(self.restore_selected)
        self.empty_button.clicked.connect(self.empty)
        # Events come in bursts (a bulk delete): the trash is read again once per burst.
        self._reread = QTimer(self)
        self._reread.setSingleShot(True)
        self._reread.setInterval(SETTLE_MS)
        self._reread.timeout.connect(self.reload)
        self.update_buttons()

    # what the window tells -------------------------------------------------------
    def connected(self, backend: Backend | None) -> None:
        self._reread.stop()
        # What still runs talks to the old connection, whose client closes next: a
        # read going on would then fail on it (not a ClientError: a crash report).
        for name in OPERATIONS:
            self.main.ops.cancel(name)
        self.scope = None
        self.model.set_rows([])
        self.results.hide()
        self.admin_reason = "Not connected" if backend is None else None
        if backend is not None and berth_api(backend) is None:
            self.title.setText(f"{TITLE}: {NO_TRASH}")
            self.admin_reason = NO_TRASH
        self.update_buttons()

    def scope_changed(self, scope: Scope | None) -> None:
        if scope != self.scope:
            # The rows, results and permission shown were another scope's.
            self.results.hide()
            self.model.set_rows([])
            self.admin_reason = "Reading the trash…"
        self.scope = scope
        self.reload()

    def reload(self) -> None:
        api = berth_api(self.main.backend)
        if api is None or self.scope is None:
            self.model.set_rows([])
            self.update_buttons()
            return
        self.title.setText(f"{TITLE} in {self.scope.label}")
        self.main.ops.run(self._load(api, self.scope), name="trash")

    def on_event(self, event: ServerEvent) -> None:
        """An event of the selected workspace's stream: entries restored, expired or
        emptied (by anyone) leave at once; then the trash is read again, which brings
        in what was deleted meanwhile and the bytes it holds now."""
        if event.type not in TRASH_EVENTS or self.scope is None:
            return
        data = event.data if isinstance(event.data, dict) else {}
        if event.type != "trashed":
            self.entries_gone(entry_ids(data.get("entries")))
        if not self._reread.isActive():
            self._reread.start()

    def entries_gone(self, ids: set[int]) -> None:
        """These entries are out of the trash (restored, emptied, expired)."""
        self.model.remove_ids(ids)
        self.update_buttons()

    # reading ---------------------------------------------------------------------
    async def _load(self, api: BerthApi, scope: Scope) -> None:
        repos = await api.repositories(scope.workspace, scope.project)
        slugs = {r.slug for r in repos}
        wanted = [r for r in repos if scope.repository in (None, r.slug)]
        entries: list[TrashEntry] = []
        cursor: str | None = None
        while True:
            page = await api.trash.entries(
                scope.workspace, repository=scope.repository, limit=PAGE, cursor=cursor
            )
            entries += [e for e in page.items if scope.project is None or e.repository in slugs]
            cursor = page.next_cursor
            if cursor is None:
                break
        storage = await api.storage(scope.workspace)
        if scope.project is None and scope.repository is None:
            in_trash = storage.in_trash
        else:
            held = {r.slug: r.in_trash for r in storage.repositories}
            in_trash = sum(held.get(r.slug, 0) for r in wanted)
        identity = self.main.identity
        reason: str | None = None
        superuser = identity is not None and identity.superuser
        if not superuser and not (wanted and all(r.permission >= Permission.ADMIN for r in wanted)):
            where = f"{scope.workspace}/{scope.repository}" if scope.repository else scope.label
            reason = f"Emptying the trash needs admin permission on {where}"
        if scope != self.scope:
            return  # the selection moved on while this was read
        self.in_trash = in_trash
        self.admin_reason = reason
        first = self.model.rowCount() == 0
        self.model.merge(entries)  # read again after an event: the selection stays
        if first:
            self._fit_pending = True
            self._fit_columns()
        self.update_buttons()

    def _fit_columns(self) -> None:
        # Measured while the tab is hidden, the last column comes out too narrow for
        # its dates: fit the columns once they are on screen.
        if self._fit_pending and self.view.isVisible():
            self._fit_pending = False
            self.view.resizeColumnsToContents()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._fit_columns()

    # acting ------------------------------------------------------------------------
    def selected_entries(self) -> list[TrashEntry]:
        rows = sorted({i.row() for i in self.view.selectionModel().selectedRows()})
        return [self.proxy.index(r, 0).data(ObjectRole) for r in rows]

    def update_buttons(self, *_: Any) -> None:
        chosen = len(self.view.selectionModel().selectedRows())
        self.restore_button.setEnabled(chosen > 0)
        self.restore_button.setText(
            f"&Restore {counted(chosen, 'entry', 'entries')}" if chosen > 1 else "&Restore"
        )
        reason = self.admin_reason
        if reason is None and self.model.rowCount() == 0:
            reason = "Nothing to empty"
        self.empty_button.setEnabled(reason is None)
        self.empty_button.setToolTip(reason or "Empty the trash of what is listed here")

    def restore_selected(self) -> None:
        api = berth_api(self.main.backend)
        entries = self.selected_entries()
        if api is None or self.scope is None or not entries:
            return
        self.main.ops.run(self._restore(api, self.scope, entries), name="trash-restore")

    async def _restore(self, api: BerthApi, scope: Scope, entries: list[TrashEntry]) -> None:
        by_id = {e.id: e for e in entries}
        results = await api.trash.restore(scope.workspace, [e.id for e in entries])
        self.results.setPlainText("\n".join(result_line(by_id.get(r.id), r) for r in results))
        self.results.show()
        restored = {r.id for r in results if r.restored or r.status == "not_found"}
        self.model.remove_ids(restored)
        self.update_buttons()
        done = sum(r.restored for r in results)
        self.main.statusBar().showMessage(
            f"Restored {done} of {counted(len(results), 'entry', 'entries')}", 8000
        )
        if done:
            self.main.refresh()  # the restored tags are back in Browse and Storage

    def empty(self) -> None:
        api = berth_api(self.main.backend)
        if api is None or self.scope is None or self.admin_reason is not None:
            return
        self.main.ops.run(self._empty(api, self.scope), name="trash-empty")

    async def _empty(self, api: BerthApi, scope: Scope) -> None:
        ids = [e.id for e in self.model.rows]
        if not ids or not await confirm_empty(self, empty_text(scope, len(ids), self.in_trash)):
            return
        try:
            results = await api.trash.empty(scope.workspace, ids)
        except ClientError as exc:
            self.main.show_failure(exc, "trash-empty")
            return
        gone = {r.id for r in results if r.status != "forbidden"}
        self.model.remove_ids(gone)
        self.update_buttons()
        self.main.statusBar().showMessage(
            f"Emptied {counted(len(gone), 'entry', 'entries')}: garbage collection frees "
            "what they held",
            8000,
        )
