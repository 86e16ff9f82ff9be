"""The banner over the window that says, once per connection, what this registry
cannot do (no catalog, deletes off, deletes only by digest, no referrers), so the
admin learns it from the window rather than from a failed action; and the short
form of it for the status bar."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.client.capabilities import Capabilities


def summary(found: Capabilities) -> str:
    """A few words for the status bar."""
    parts = ["OCI registry: catalog" if found.catalog else "OCI registry: no catalog"]
    if found.deletes is False:
        parts.append("deletes off")
    elif found.tag_delete is False:
        parts.append("deletes by digest only")
    elif found.tag_delete:
        parts.append("tag deletes")
    else:
        parts.append("deletes: not known yet")
    if found.referrers is False:
        parts.append("no referrers API")
    elif found.referrers:
        parts.append("referrers")
    return " · ".join(parts)


class CapabilityBanner(QFrame):
    addRepositoriesRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("capabilityBanner")
        self.setAccessibleName("Registry capabilities")
        self.setAccessibleDescription("What this registry cannot do, found when connecting")
        self.setStyleSheet(
            "#capabilityBanner { background: #fff8e1; border: 1px solid #f0d58c;"
            " border-radius: 3px; }"
            "#capabilityBanner QLabel { color: #4a3b00; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setAccessibleName("Registry limitations")
        layout.addWidget(self.label, 1)
        buttons = QVBoxLayout()
        self.add_button = QPushButton("Add repositories…", self)
        self.add_button.setAccessibleDescription(
            "Type the names of repositories to browse, since the catalog does not list them"
        )
        self.add_button.clicked.connect(self.addRepositoriesRequested)
        buttons.addWidget(self.add_button)
        self.dismiss = QPushButton("Dismiss", self)
        self.dismiss.setAccessibleDescription("Hide these notes until the next connection")
        self.dismiss.clicked.connect(self.hide)
        buttons.addWidget(self.dismiss)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.notes: tuple[str, ...] = ()
        self.hide()

    def show_notes(self, registry: str, found: Capabilities | None) -> None:
        """Show what ``found`` says about ``registry``; hide when nothing is missing."""
        self.notes = found.notes if found is not None else ()
        if found is None or not self.notes:
            self.label.clear()
            self.hide()
            return
        items = "".join(f"<li>{escape(n)}</li>" for n in self.notes)
        self.label.setText(
            f"<b>{escape(registry)}</b> is a plain OCI registry; some things work "
            f"differently there:<ul style='margin: 2px 0 0 -20px'>{items}</ul>"
        )
        self.label.setAccessibleDescription(" ".join(self.notes))
        self.add_button.setVisible(not found.catalog)
        self.show()
