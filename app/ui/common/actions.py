"""The window's actions, made once and shared by toolbar, menus, context menus and
shortcuts, so their enabled state and tooltips cannot disagree.

The server checks every permission; these only mirror them: an action the user
lacks the permission for is disabled and its tooltip says which permission on
which repository is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QObject, QPoint, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QAbstractScrollArea, QMenu, QWidget

from app.client.berth_api import Image
from app.core.permissions import Permission


@dataclass(frozen=True, slots=True)
class Context:
    """What the actions act on right now."""

    connected: bool = False
    image: Image | None = None
    permission: Permission | None = None  # on the image's repository; None: not known yet
    selected_tags: int = 0


def short_reason(context: Context, need: Permission) -> str | None:
    """Why an action is greyed, in a few words for its menu entry (a menu item's
    tooltip is neither shown by default nor read by a screen reader)."""
    have = context.permission
    if context.image is None or (have is not None and have >= need):
        return None
    return "checking permission…" if have is None else f"needs {need.label} permission"


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

    def _set(
        self,
        action: QAction,
        enabled: bool,
        reason: str | None,
        label: str | None = None,
        short: str | None = None,
    ) -> None:
        action.setEnabled(enabled and reason is None)
        tip = reason or str(action.data())
        action.setToolTip(tip)
        action.setStatusTip(tip)
        if label is not None:
            # Menus show the text, so a greyed entry says why; the toolbar keeps the
            # bare label and explains in its tooltip.
            action.setIconText(label.replace("&", "").rstrip("…"))
            action.setText(f"{label} ({short})" if reason is not None and short else label)

    def explain_blocked(self, action: QAction, reason: str, short: str) -> None:
        """Grey ``action`` for a reason beyond permissions (deletes off here)."""
        action.setEnabled(False)
        action.setToolTip(reason)
        action.setStatusTip(reason)
        label = action.iconText()
        action.setText(f"{label}… ({short})")

    def update(self, context: Context) -> None:
        self.context = context
        has_tags = context.selected_tags > 0
        has_image = context.image is not None
        self.refresh.setEnabled(context.connected)
        self.find.setEnabled(True)
        self._set(self.copy_pull, has_image, None)
        self._set(self.copy_digest, has_tags, None)
        what = "Deleting tags" if context.selected_tags != 1 else "Deleting a tag"
        n = context.selected_tags
        self._set(
            self.delete_tags,
            has_tags,
            missing(context, Permission.WRITE, what) if has_tags else None,
            f"&Delete {n} tags…" if n > 1 else "&Delete tag…",
            short_reason(context, Permission.WRITE),
        )
        self._set(
            self.delete_image,
            has_image,
            missing(context, Permission.ADMIN, "Deleting an image"),
            "Delete &image…",
            short_reason(context, Permission.ADMIN),
        )


def install_context_menu(view: QAbstractScrollArea, items: Sequence[QAction | None]) -> None:
    """A right click (or the menu key) on ``view`` opens a menu of its actions:
    these (None: a separator) and any added to it later. Added to the view, the
    actions' widget-context shortcuts (Del, Shift+Del) work where it has the focus.
    The menu is built anew each time, shows the actions' tooltips (why one is
    greyed), and pops up without a nested event loop, so the window's asyncio work
    goes on while it is open."""
    for action in items:
        if action is None:
            action = QAction(view)
            action.setSeparator(True)
        view.addAction(action)
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def show(pos: QPoint) -> None:
        menu = QMenu(view)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.setToolTipsVisible(True)
        menu.setAccessibleName("Context menu")
        menu.addActions(view.actions())
        # A scroll area's request comes in viewport coordinates.
        menu.popup(view.viewport().mapToGlobal(pos))

    view.customContextMenuRequested.connect(show)
