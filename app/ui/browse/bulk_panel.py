"""The strip under the tags table that shows a bulk delete: progress, cancel, and
afterwards what did not get deleted and why. Non-modal: browsing goes on."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.backends.deletion import BulkDelete, BulkOutcome
from app.ui.common.formatting import counted


class BulkPanel(QFrame):
    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("bulkPanel")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Bulk delete")
        self.setAccessibleDescription("Progress and results of the last bulk delete")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        row = QHBoxLayout()
        self.label = QLabel(self)
        self.label.setAccessibleName("Bulk delete status")
        row.addWidget(self.label, 1)
        self.progress = QProgressBar(self)
        self.progress.setAccessibleName("Bulk delete progress")
        self.progress.setMaximumWidth(260)
        row.addWidget(self.progress)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setAccessibleDescription("Stop after the chunk being deleted now")
        self.cancel_button.clicked.connect(self._cancel)
        row.addWidget(self.cancel_button)
        self.close_button = QPushButton("Close", self)
        self.close_button.setAccessibleDescription("Hide the bulk delete results")
        self.close_button.clicked.connect(self.hide)
        row.addWidget(self.close_button)
        layout.addLayout(row)
        self.failures = QListWidget(self)
        self.failures.setAccessibleName("Tags not deleted")
        self.failures.setAccessibleDescription("Each tag that was not deleted, with the reason")
        self.failures.setMaximumHeight(120)
        layout.addWidget(self.failures)
        self.job: BulkDelete | None = None
        self.outcome: BulkOutcome | None = None
        self.hide()

    @property
    def running(self) -> bool:
        return self.job is not None

    def start(self, job: BulkDelete) -> None:
        self.job = job
        self.outcome = None
        total = len(job.tags)
        self.label.setText(f"Deleting {counted(total, 'tag')} of {job.image.full_name}…")
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.failures.clear()
        self.failures.hide()
        self.cancel_button.setEnabled(True)
        self.cancel_button.show()
        self.close_button.hide()
        self.show()

    def advance(self, done: int, total: int) -> None:
        self.progress.setValue(done)
        if self.job is not None and not self.job.cancelling:
            self.label.setText(
                f"Deleting tags of {self.job.image.full_name}: {done:,} of {total:,}"
            )

    def _cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.label.setText("Cancelling after the current chunk…")
            self.cancelRequested.emit()

    def finish(self, outcome: BulkOutcome) -> None:
        self.job = None
        self.outcome = outcome
        text = outcome.summary
        if outcome.stopped_by is not None:
            text += f" Stopped: {outcome.stopped_by.message}"
        self.label.setText(text)
        self.label.setAccessibleDescription(text)
        self.label.setWordWrap(True)
        self.cancel_button.hide()
        self.close_button.show()
        self.failures.clear()
        for tag, reason in outcome.failed:
            self.failures.addItem(f"{tag}: {reason}")
        for tag in outcome.gone:
            self.failures.addItem(f"{tag}: already gone (deleted meanwhile)")
        self.failures.setVisible(self.failures.count() > 0)
