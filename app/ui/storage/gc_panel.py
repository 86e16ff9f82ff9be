"""The GC panel of the storage view: what garbage collection has queued and when it
reviews next, how many bytes are pending, the last runs, and "Run GC now" for
workspace admins (disabled, with a tooltip saying why, for everyone else).

:func:`confirm_run_gc` is the confirmation seam: the view awaits it, tests patch it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.client.berth_api import GcRun, GcStatus
from app.ui.common.dialogs import ask
from app.ui.common.formatting import (
    counted,
    exact_bytes,
    format_bytes,
    long_time,
    relative_time,
    timestamp,
)
from app.ui.common.table_model import Column, FilterProxy, PagedTableModel
from app.ui.storage import style
from app.ui.storage.charts import duration_text, run_text, trigger_text

RUN_COLUMNS: list[Column[GcRun]] = [
    Column(
        "When",
        lambda r: relative_time(r.started_at),
        lambda r: timestamp(r.started_at),
        lambda r: long_time(r.started_at),
        description="When the run started",
    ),
    Column(
        "Trigger",
        lambda r: trigger_text(r.triggers, brief=True),
        lambda r: trigger_text(r.triggers, brief=True),
        run_text,
        description="What queued the reviews this run handled",
    ),
    Column(
        "Manifests",
        lambda r: f"{r.manifests_deleted:,}",
        lambda r: r.manifests_deleted,
        numeric=True,
        description="Manifests deleted (no tag, parent index or live subject left)",
    ),
    Column(
        "Blobs",
        lambda r: f"{r.blobs_deleted:,}",
        lambda r: r.blobs_deleted,
        numeric=True,
        description="Blobs deleted (no manifest in the workspace referenced them)",
    ),
    Column(
        "Freed",
        lambda r: format_bytes(r.bytes_freed),
        lambda r: r.bytes_freed,
        lambda r: exact_bytes(r.bytes_freed),
        numeric=True,
        description="Bytes given back",
    ),
    Column(
        "Duration",
        lambda r: duration_text(r.duration_ms),
        lambda r: r.duration_ms,
        numeric=True,
        description="How long the run took",
    ),
]
WHEN, TRIGGER, MANIFESTS, BLOBS, FREED, DURATION = range(6)


def seconds_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


def until_text(when: datetime | None, now: datetime | None = None) -> str:
    """When the next review falls due, relative to now."""
    if when is None:
        return "nothing queued"
    now = now or datetime.now(UTC)
    seconds = (when - now).total_seconds()
    if seconds <= 0:
        return "due now"
    if seconds < 60:
        return f"in {seconds:.0f} s"
    if seconds < 7200:
        return f"in {seconds / 60:.0f} min"
    return f"in {seconds / 3600:.1f} h"


class GcRunsModel(PagedTableModel[GcRun]):
    def __init__(self) -> None:
        super().__init__(
            RUN_COLUMNS, key=lambda r: r.id, search_text=lambda r: " ".join(r.triggers), name="gc"
        )


class GcPanel(QWidget):
    runRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gcPanel")
        self.setAccessibleName("Garbage collection")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        top = QHBoxLayout()
        top.addWidget(style.heading("Garbage collection", self), 1)
        self.run_button = QPushButton("Run GC now…", self)
        self.run_button.setObjectName("runGcButton")
        self.run_button.setAccessibleName("Run GC now")
        self.run_button.setEnabled(False)
        self.run_button.clicked.connect(self.runRequested)
        top.addWidget(self.run_button)
        layout.addLayout(top)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(2)
        self.pending = QLabel("—", self)
        self.queued = QLabel("—", self)
        self.next_review = QLabel("—", self)
        self.timing = QLabel("—", self)
        self.result = QLabel("", self)
        self.result.setWordWrap(True)
        self._titles: dict[QLabel, str] = {}
        for label, text, description in (
            (self.pending, "Pending GC:", "Bytes held that no tag reaches: GC frees them"),
            (self.queued, "Queued reviews:", "Manifests and blobs waiting for review"),
            (self.next_review, "Next review:", "When the earliest queued review falls due"),
            (self.timing, "Timing:", "Review delay and upload grace of this registry"),
        ):
            self._titles[label] = text.rstrip(":")
            label.setAccessibleDescription(description)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(text, label)
            self._set(label, "—")
        layout.addLayout(form)
        layout.addWidget(self.result)

        self.runs_model = GcRunsModel()
        self.runs_proxy = FilterProxy(self)
        self.runs_proxy.setSourceModel(self.runs_model)
        self.runs = QTableView(self)
        self.runs.setObjectName("gcRuns")
        self.runs.setModel(self.runs_proxy)
        self.runs.setAccessibleName("Last GC runs")
        self.runs.setAccessibleDescription(
            "Trigger, manifests and blobs deleted, bytes freed and duration of each run"
        )
        self.runs.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.runs.setSortingEnabled(True)
        self.runs.sortByColumn(WHEN, Qt.SortOrder.DescendingOrder)
        self.runs.setAlternatingRowColors(True)
        self.runs.setWordWrap(False)
        self.runs.setTabKeyNavigation(False)
        self.runs.verticalHeader().setVisible(False)
        self.runs.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.runs.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(TRIGGER, QHeaderView.ResizeMode.Stretch)
        header.setHighlightSections(False)
        runs_title = QLabel("Last runs", self)
        runs_title.setBuddy(self.runs)
        layout.addWidget(runs_title)
        layout.addWidget(self.runs, 1)
        self.status: GcStatus | None = None
        self.set_permission(False, None)

    def set_permission(self, admin: bool, workspace: str | None) -> None:
        """Mirror the server's rule: only workspace admins may run GC now."""
        self.run_button.setEnabled(admin and workspace is not None)
        if workspace is None:
            tip = "Select a workspace first"
        elif admin:
            tip = (
                f"Review everything queued in {workspace} now, without waiting for the "
                "review delay (the upload grace still protects recent uploads)"
            )
        else:
            tip = (
                f"Running GC needs workspace admin in {workspace}; "
                "you are not an admin of this workspace."
            )
        self.run_button.setToolTip(tip)
        self.run_button.setAccessibleDescription(tip)

    def _set(self, label: QLabel, text: str) -> None:
        """A value, and what a screen reader reads: the value with its label (the
        form's label is another widget, which the reader does not tie to it)."""
        label.setText(text)
        label.setAccessibleName(f"{self._titles[label]}: {text}")

    def show_status(self, status: GcStatus) -> None:
        self.status = status
        self._set(self.pending, format_bytes(status.pending_bytes))
        self.pending.setToolTip(exact_bytes(status.pending_bytes))
        due = status.due_manifests + status.due_blobs
        self._set(
            self.queued,
            f"{counted(status.queued_manifests, 'manifest')}, "
            f"{counted(status.queued_blobs, 'blob')}" + (f" ({due:,} due now)" if due else ""),
        )
        self.queued.setToolTip(
            f"Due now: {counted(status.due_manifests, 'manifest')}, "
            f"{counted(status.due_blobs, 'blob')}"
        )
        self._set(self.next_review, until_text(status.next_review_at))
        self.next_review.setToolTip(long_time(status.next_review_at) or "")
        self._set(
            self.timing,
            f"review delay {seconds_text(status.review_delay_s)}, "
            f"upload grace {seconds_text(status.upload_grace_s)}",
        )
        self.timing.setToolTip(
            "Deletes are reviewed after the review delay; blobs and manifests uploaded "
            "or checked within the upload grace are never collected"
        )
        self.runs_model.set_rows(status.recent_runs)

    def show_running(self) -> None:
        self.run_button.setEnabled(False)
        self.result.setText("Running garbage collection…")

    def show_run(self, run: GcRun) -> None:
        self.result.setText(
            f"GC freed {format_bytes(run.bytes_freed)}: {counted(run.blobs_deleted, 'blob')} "
            f"and {counted(run.manifests_deleted, 'manifest')} in "
            f"{duration_text(run.duration_ms)}."
        )
        self.result.setToolTip(run_text(run))

    def clear(self) -> None:
        self.status = None
        for label in (self.pending, self.queued, self.next_review, self.timing):
            self._set(label, "—")
            label.setToolTip("")
        self.result.setText("")
        self.runs_model.set_rows([])


async def confirm_run_gc(parent: QWidget | None, workspace: str, status: GcStatus | None) -> bool:
    """Ask before running GC now. The seam tests patch; True means run."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Run garbage collection")
    box.setText(f"Run garbage collection in {workspace} now?")
    queued = (
        f"{counted(status.queued_manifests, 'manifest')} and "
        f"{counted(status.queued_blobs, 'blob')} are queued; "
        f"{format_bytes(status.pending_bytes)} is pending. "
        if status is not None
        else ""
    )
    box.setInformativeText(
        queued + "Everything queued is reviewed at once instead of after the review delay. "
        "What is freed cannot be restored; blobs uploaded within the upload grace stay."
    )
    run = box.addButton("Run GC now", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.setAccessibleName("Run garbage collection")
    try:
        await ask(box)
        # A custom button's result code is not Accepted: which button closed it says.
        return box.clickedButton() is run
    finally:
        box.deleteLater()
