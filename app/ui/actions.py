"""The window's actions, made once and shared by toolbar, menus, context menus and
shortcuts, so their enabled state and tooltips cannot disagree.

The server checks every permission; these only mirror them: an action the user
lacks the permission for is disabled and its tooltip says which permission on
which repository is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from app.client.berth_api import Image
from app.core.permissions import Permission


@dataclass(frozen=True, slots=True)
class Context:
    """What the actions act on right now."""

    connected: bool = False
    image: Image | None = None
    permission: Permission | None = None  # on the image's repository; None: not known yet
    selected_tags: int = 0


def missing(context: Context, need: Permission, doing: str) -> str | None:
    """Why ``doing`` is not allowed, or None when it is."""
    image = context.image
    if image is None:
        return None
    have = context.permission
    if have is None:
        return f"{doing} — checking your permission on {image.repository_path}…"
    if have >= need:
        return None
    return (
        f"{doing} needs {need.label} permission on {image.repository_path}; "
        f"you have {have.label if have is not Permission.NONE else 'no'} permission there."
    )


class Actions(QObject):
    def __init__(self, window: QWidget) -> None:
        super().__init__(window)

        def make(
            text: str, shortcut: QKeySequence | QKeySequence.StandardKey | str | None, tip: str
        ) -> QAction:
            action = QAction(text, window)
            if shortcut is not None:
                action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.setStatusTip(tip)
            action.setToolTip(tip)
            action.setData(tip)  # the tooltip to restore when enabled again
            window.addAction(action)
            return action

        self.copy_pull = make(
            "Copy &pull command", QKeySequence.StandardKey.Copy,
            "Copy a pull command for the selected tag (or image) to the clipboard",
        )  # fmt: skip
        self.copy_digest = make(
            "Copy &digest", "Ctrl+Shift+C", "Copy the manifest digest of the selected tag"
        )
        self.delete_tags = make(
            "&Delete tag(s)…", QKeySequence.StandardKey.Delete, "Delete the selected tags"
        )
        self.delete_image = make(
            "Delete &image…", "Shift+Del", "Delete the image with all of its tags"
        )
        self.refresh = make("&Refresh", QKeySequence.StandardKey.Refresh, "Load everything again")
        self.refresh.setShortcuts([QKeySequence("F5"), QKeySequence("Ctrl+R")])
        self.find = make("&Filter", QKeySequence.StandardKey.Find, "Filter the focused list")
        self.connections = make(
            "&Connections…", "Ctrl+Shift+O", "Add, edit or switch registry connections"
        )
        self.context = Context()
        self.update(Context())

    def _set(self, action: QAction, enabled: bool, reason: str | None) -> None:
        action.setEnabled(enabled and reason is None)
        tip = reason or str(action.data())
        action.setToolTip(tip)
        action.setStatusTip(tip)

    def update(self, context: Context) -> None:
        self.context = context
        has_tags = context.selected_tags > 0
        has_image = context.image is not None
        self.refresh.setEnabled(context.connected)
        self.find.setEnabled(True)
        self._set(self.copy_pull, has_image, None)
        self._set(self.copy_digest, has_tags, None)
        what = "Deleting tags" if context.selected_tags != 1 else "Deleting a tag"
        self._set(
            self.delete_tags,
            has_tags,
            missing(context, Permission.WRITE, what) if has_tags else None,
        )
        self._set(
            self.delete_image,
            has_image,
            missing(context, Permission.ADMIN, "Deleting an image"),
        )
        n = context.selected_tags
        self.delete_tags.setText(f"&Delete {n} tags…" if n > 1 else "&Delete tag…")
