"""Bugs (exceptions nobody expected) end up here, through ``sys.excepthook``: a
non-modal dialog with the traceback to copy into a bug report. Expected failures
never do; they go to the error bar."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from types import TracebackType

from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

Hook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


class ExceptionDialog(QDialog):
    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Berth: unexpected error")
        self.setAccessibleName("Unexpected error")
        self.setAccessibleDescription("A bug in Berth; the details can be copied into a report")
        layout = QVBoxLayout(self)
        label = QLabel(
            "Berth ran into a bug. The window keeps working, but the last action may "
            "not have finished. Please report this with the details below."
        )
        label.setWordWrap(True)
        layout.addWidget(label)
        self.details = QPlainTextEdit(text, self)
        self.details.setReadOnly(True)
        self.details.setAccessibleName("Error details")
        layout.addWidget(self.details)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        copy = buttons.addButton("Copy details", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QApplication.clipboard().setText(text))
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(640, 400)


_open: list[ExceptionDialog] = []


def show_exception(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    sys.stderr.write(text)
    if QApplication.instance() is None:
        return
    dialog = ExceptionDialog(text, QApplication.activeWindow())
    _open.append(dialog)
    dialog.finished.connect(lambda _r: _open.remove(dialog) if dialog in _open else None)
    dialog.show()  # non-modal: a nested event loop inside a qasync task would break it


def install() -> Hook:
    """Route uncaught exceptions to the dialog; returns the previous hook."""
    previous = sys.excepthook
    sys.excepthook = show_exception
    return previous
