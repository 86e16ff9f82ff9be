"""The toolbar's "GC: 1.2 GiB pending" button (DESIGN.md §3): what the selected
workspace holds awaiting garbage collection, always in sight; a click opens the
storage view."""

from __future__ import annotations

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QToolButton, QWidget

from app.client.berth_api import Storage
from app.core.units import format_bytes
from app.ui.common.formatting import exact_bytes


class PendingGcButton(QToolButton):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pendingGc")
        self.setAutoRaise(True)
        self.setAccessibleName("Pending garbage collection")
        self.setAccessibleDescription(
            "Bytes the selected workspace holds that no tag reaches; opens the storage view"
        )
        self.workspace: str | None = None
        self.pending: int | None = None
        # In a toolbar the widget's action decides visibility (a hidden action also
        # disables its widget, so the widget must not be hidden behind its back).
        self.action: QAction | None = None
        self.show_figures(None, None)

    def _set_shown(self, shown: bool) -> None:
        if self.action is not None:
            self.action.setVisible(shown)
        else:
            self.setVisible(shown)

    @property
    def shown(self) -> bool:
        return self.action.isVisible() if self.action is not None else not self.isHidden()

    def show_figures(self, workspace: str | None, storage: Storage | None) -> None:
        """The workspace's latest figures (``None``: nothing to show)."""
        self.workspace = workspace
        self.pending = storage.pending if storage is not None else None
        if workspace is None or storage is None:
            self._set_shown(False)
            return
        self.setText(f"GC: {format_bytes(storage.pending)} pending")
        self.setToolTip(
            f"{exact_bytes(storage.pending)} in {workspace} "
            f"{'is' if storage.pending == 1 else 'are'} held but no tag reaches them; "
            "garbage collection frees them. Click for the storage view."
        )
        self._set_shown(True)
