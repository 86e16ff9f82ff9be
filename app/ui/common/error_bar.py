"""The inline, non-modal bar where expected failures are shown (network down, a
permission missing, something deleted meanwhile). It never blocks the window."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from app.client.errors import (
    AuthenticationFailed,
    ClientError,
    ConnectionFailed,
    NotFound,
    PermissionDenied,
)


def headline(error: ClientError) -> str:
    if isinstance(error, PermissionDenied):
        if error.required and error.repository:
            return f"Permission missing: {error.required} on {error.repository}."
        return "Permission denied."
    if isinstance(error, AuthenticationFailed):
        return "Not logged in (credentials missing, wrong or expired)."
    if isinstance(error, NotFound):
        return "Not found (perhaps deleted meanwhile)."
    if isinstance(error, ConnectionFailed):
        return "Cannot reach the registry."
    return "The registry reported an error."


class ErrorBar(QFrame):
    retryRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBar")
        self.setAccessibleName("Error")
        self.setAccessibleDescription("The last error; it does not block the window")
        self.setStyleSheet(
            "#errorBar { background: #fdecea; border: 1px solid #f5c2c0; border-radius: 3px; }"
            "#errorBar QLabel { color: #611a15; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setAccessibleName("Error message")
        layout.addWidget(self.label, 1)
        self.retry = QPushButton("Retry", self)
        self.retry.setAccessibleDescription("Try the failed action again")
        self.retry.clicked.connect(self.retryRequested)
        layout.addWidget(self.retry)
        self.close_button = QPushButton("Dismiss", self)
        self.close_button.setAccessibleDescription("Hide this message")
        self.close_button.clicked.connect(self.clear)
        layout.addWidget(self.close_button)
        self.error: ClientError | None = None
        self.hide()

    @property
    def text(self) -> str:
        return self.label.text()

    def show_error(self, error: ClientError) -> None:
        self.error = error
        self.show_message(f"{headline(error)} {error.message}")

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.label.setAccessibleDescription(text)
        self.show()

    def clear(self) -> None:
        self.error = None
        self.label.clear()
        self.hide()
