"""The trash entries of one scope as table rows (what, tag → digest, who, when, how,
restorable until), newest first as the server lists them."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from app.client.trash import TrashEntry
from app.ui.common.formatting import counted, format_bytes, long_time, relative_time, short_digest

WHAT, CHANGE, SIZE, BY, WHEN, HOW, UNTIL = range(7)
HEADERS = ("What", "Tag → digest", "Held", "Deleted by", "Deleted", "How", "Restorable until")
SortRole = Qt.ItemDataRole.UserRole + 1
ObjectRole = Qt.ItemDataRole.UserRole + 2

# The server's action names, as a person says them.
HOW_TEXT = {
    "tag.delete": "tag deleted",
    "manifest.delete": "deleted by digest",
    "image.delete": "image deleted",
    "tag.move": "moved by a push",
    "policy.run": "cleanup policy",
    "tag.rollback": "rolled back by a restore",
}

Index = QModelIndex | QPersistentModelIndex


def what_text(entry: TrashEntry) -> str:
    if entry.kind == "image":
        return f"{entry.image} (image, {counted(entry.tag_count, 'tag')})"
    if entry.tag:
        return f"{entry.image}:{entry.tag}"
    return entry.image


def change_text(entry: TrashEntry) -> str:
    digest = short_digest(entry.digest) if entry.digest else "—"
    if entry.tag and entry.replaced_by:
        return f"{entry.tag} → {digest} (now {short_digest(entry.replaced_by)})"
    if entry.tag:
        return f"{entry.tag} → {digest}"
    return digest


def until_text(entry: TrashEntry) -> str:
    return entry.expires_at.astimezone().strftime("%Y-%m-%d %H:%M")


class TrashModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[TrashEntry] = []

    def set_rows(self, rows: list[TrashEntry]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def merge(self, rows: list[TrashEntry]) -> None:
        """The server's rows now: entries gone leave, new ones come in where the server
        lists them, the rest stay where they are (and so does the selection on them)."""
        wanted = {e.id for e in rows}
        self.remove_ids({e.id for e in self.rows} - wanted)
        known = {e.id for e in self.rows}
        for pos, entry in enumerate(rows):
            if pos < len(self.rows) and self.rows[pos].id == entry.id:
                if self.rows[pos] != entry:
                    self.rows[pos] = entry
                    self.dataChanged.emit(self.index(pos, 0), self.index(pos, len(HEADERS) - 1))
            elif entry.id not in known:
                self.beginInsertRows(QModelIndex(), pos, pos)
                self.rows.insert(pos, entry)
                self.endInsertRows()
            else:  # the server's order changed under the rows: show it as it is now
                self.set_rows(rows)
                return

    def remove_ids(self, ids: set[int]) -> None:
        """Entries restored or emptied (here or elsewhere) leave."""
        for row in reversed(range(len(self.rows))):
            if self.rows[row].id in ids:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self.rows[row]
                self.endRemoveRows()

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section] if 0 <= section < len(HEADERS) else None
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        entry = self.rows[index.row()]
        col = index.column()
        if role == ObjectRole:
            return entry
        if role == SortRole:
            return (
                what_text(entry),
                change_text(entry),
                entry.size,
                entry.deleted_by or "",
                entry.deleted_at.timestamp(),
                entry.action,
                entry.expires_at.timestamp(),
            )[col]
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                what_text(entry),
                change_text(entry),
                format_bytes(entry.size),
                entry.deleted_by or "—",
                relative_time(entry.deleted_at),
                HOW_TEXT.get(entry.action, entry.action),
                until_text(entry),
            )[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == CHANGE:
                return entry.digest
            if col == WHEN:
                return long_time(entry.deleted_at)
            if col == UNTIL:
                return long_time(entry.expires_at)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
