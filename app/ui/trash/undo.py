"""Undo the window's last delete: right after it deletes tags or an image on a
registry whose trash is on, the status bar offers *Undo* for a while and Ctrl+Z
does the same: the trash entries that delete made are restored, and the rows come
back where they were.

The delete answers do not name the trash entries they made, so they are found in
the image's trash at once: for each deleted tag the newest entry of that name on
the digest it had (ids only grow, so a later delete of the same name is never
mistaken for an older one), for an image its one image entry (an image is in the
trash at most once). Nothing found (the trash is off, or a plain OCI registry,
which has none): no Undo is offered.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from app.client.berth_api import BerthApi
from app.client.trash import TrashEntry
from app.core.units import counted
from app.ui.backends.deletion import Deleted
from app.ui.common.window import Window
from app.ui.trash.view import berth_api

OFFER_MS = 30_000  # how long the status bar offers the undo after a delete
PAGE = 1000


@dataclass(frozen=True, slots=True)
class Offer:
    """A delete that can be undone: its workspace, its trash entries, what it was."""

    workspace: str
    entries: tuple[int, ...]
    what: str  # "2 tags of acme/web/frontend", "image acme/web/frontend"


def described(deleted: Deleted) -> str:
    if deleted.whole_image:
        return f"image {deleted.image.full_name}"
    if len(deleted.tags) == 1:
        return f"{deleted.image.full_name}:{deleted.tags[0][0]}"
    return f"{counted(len(deleted.tags), 'tag')} of {deleted.image.full_name}"


def entries_of(deleted: Deleted, trash: list[TrashEntry]) -> list[int]:
    """The trash entries ``deleted`` made, from the image's trash (see the module
    docstring for why these are the ones)."""
    mine = [e for e in trash if e.image_id == deleted.image.id]
    if deleted.whole_image:
        return sorted(e.id for e in mine if e.kind == "image")[-1:]
    newest: dict[tuple[str, str], int] = {}
    for e in mine:
        if e.kind == "tag" and e.tag is not None and e.digest is not None:
            key = (e.tag, e.digest)
            newest[key] = max(newest.get(key, 0), e.id)
    return sorted(newest[t] for t in deleted.tags if t in newest)


class UndoDelete(QObject):
    """The Undo of the last delete: an action (Ctrl+Z, the Edit menu) and a status
    bar button, enabled and shown together while the offer lasts."""

    restored = Signal(object)  # set[int]: trash entries restored (they leave the trash view)

    def __init__(self, window: Window, parent: QWidget) -> None:
        super().__init__(parent)
        self.window = window
        self.offer: Offer | None = None
        self.action = QAction("&Undo delete", parent)
        self.action.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        self.action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        parent.addAction(self.action)
        self.action.triggered.connect(self.undo)

        self.widget = QWidget(parent)
        self.widget.setObjectName("undoDelete")
        layout = QHBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.label = QLabel(self.widget)
        layout.addWidget(self.label)
        self.button = QToolButton(self.widget)
        self.button.setText("Undo")
        self.button.setAccessibleName("Undo delete")
        self.button.setAccessibleDescription("Restore what the last delete removed (Ctrl+Z)")
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.clicked.connect(self.undo)
        layout.addWidget(self.button)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.withdraw)
        self.withdraw()

    # --- offering ---------------------------------------------------------------------
    def deleted(self, deleted: Deleted) -> None:
        """The window deleted something: find its trash entries, then offer the undo."""
        self.withdraw()  # a new delete replaces the last one's offer
        api = berth_api(self.window.backend)
        if api is None or not deleted.restorable or not (deleted.tags or deleted.whole_image):
            return
        self.window.ops.run(self._find(api, deleted), name="undo-find")

    async def _find(self, api: BerthApi, deleted: Deleted) -> None:
        workspace = deleted.image.workspace
        trash: list[TrashEntry] = []
        cursor: str | None = None
        while True:
            page = await api.trash.entries(
                workspace, image_id=deleted.image.id, limit=PAGE, cursor=cursor
            )
            trash += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        ids = entries_of(deleted, trash)
        if ids and self.window.backend is not None:
            self.show(Offer(workspace, tuple(ids), described(deleted)))

    def show(self, offer: Offer) -> None:
        self.offer = offer
        text = f"Deleted {offer.what}."
        self.label.setText(text)
        tip = f"Restore {offer.what} from Recently deleted (Ctrl+Z)"
        self.button.setToolTip(tip)
        self.button.setAccessibleDescription(tip)
        self.action.setText(f"&Undo delete of {offer.what}")
        self.action.setEnabled(True)
        self.widget.show()
        self._timer.start(OFFER_MS)

    def withdraw(self) -> None:
        """No undo on offer any more (it ran, its time is up, another delete came,
        the connection changed)."""
        self._timer.stop()
        self.window.ops.cancel("undo-find")
        self.offer = None
        self.action.setText("&Undo delete")
        self.action.setEnabled(False)
        self.widget.hide()

    def connected(self, _backend: object) -> None:
        """Another connection (or none): the offer was the old one's, and a restore
        still running would go on with its closing client."""
        self.withdraw()
        self.window.ops.cancel("undo-delete")

    # --- undoing ----------------------------------------------------------------------
    def undo(self) -> None:
        offer, api = self.offer, berth_api(self.window.backend)
        self.withdraw()
        if offer is None or api is None:
            return
        self.window.ops.run(self._restore(api, offer), name="undo-delete")

    async def _restore(self, api: BerthApi, offer: Offer) -> None:
        results = await api.trash.restore(offer.workspace, list(offer.entries))
        back = [r for r in results if r.restored]
        refused = [r for r in results if not r.restored]
        self.restored.emit({r.id for r in results if r.restored or r.status == "not_found"})
        if refused:
            # The server's own words (a name pushed again since; restored meanwhile).
            reasons = "; ".join(f"{r.tag or r.id}: {r.message or r.status}" for r in refused[:5])
            self.window.error_bar.show_message(
                f"Undo restored {len(back):,} of {counted(len(results), 'entry', 'entries')} "
                f"({offer.what}). Not restored: {reasons}"
            )
        else:
            self.window.statusBar().showMessage(f"Restored {offer.what}.", 8000)
        if back:
            self.window.refresh()  # the restored rows come back in Browse
