"""The view's confirmations. *Run now…*: how many tags go and stay, in how many
images, the one-off exceptions, and what GC frees afterwards, all the server's
figures for exactly the plan that will run. *Remove policy…*: what removing it
means. :func:`confirm_run` and :func:`confirm_remove_policy` are the seams the view
awaits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from app.client.cleanup import Preview
from app.ui.common.dialogs import ask
from app.ui.common.formatting import counted, format_bytes


@dataclass(frozen=True, slots=True)
class RunFigures:
    """What the confirmation states; every number is the registry's."""

    scope: str
    preview: Preview
    exceptions: int  # one-off exceptions among the tags that would go
    remove: int  # tags the run deletes (the preview's, or the impact's with exceptions)
    freed: int  # bytes GC frees after the run
    kept: int  # bytes of the deleted tags that stay: other tags or images use them
    unsaved: bool  # the rules were edited and not saved: the run uses them once
    retention_s: float = 0.0  # the registry's trash retention; 0: deletes are final


def figures_text(f: RunFigures) -> str:
    p = f.preview
    if f.exceptions:
        what = (
            f"<b>{counted(f.remove, 'tag')}</b> will be deleted. The preview planned "
            f"{p.remove:,}; you keep {f.exceptions:,} of them this once (one-off "
            f"exceptions), and {counted(p.keep, 'tag')} stay by the rules."
        )
    else:
        what = (
            f"<b>{counted(f.remove, 'tag')}</b> will be deleted; "
            f"{counted(p.keep, 'tag')} stay by the rules."
        )
    images = f" The plan covers {counted(p.images, 'image')}." if p.images else ""
    kept = (
        f"{format_bytes(f.kept)} of theirs stays because other tags or images use it"
        if f.kept
        else "nothing of theirs stays for other tags or images"
    )
    until = (
        "their trash entries expire and garbage collection runs"
        if f.retention_s > 0
        else "garbage collection runs"
    )
    storage = (
        f"Nothing is freed until {until}; then "
        f"<b>{format_bytes(f.freed)}</b> will be freed, and {kept}."
    )
    return f"{what}{images}<br><br>{storage}"


class ConfirmRunDialog(QDialog):
    def __init__(self, figures: RunFigures, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.figures = figures
        title = f"Run the cleanup policy of {figures.scope} now?"
        self.setWindowTitle("Run cleanup policy")
        self.setAccessibleName("Run cleanup policy")
        self.setAccessibleDescription(title)
        self.setMinimumWidth(480)
        layout = QVBoxLayout(self)
        heading = QLabel(title, self)
        font = heading.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        heading.setFont(font)
        heading.setWordWrap(True)
        layout.addWidget(heading)
        self.what = QLabel(figures_text(figures), self)
        self.what.setObjectName("runFigures")
        self.what.setWordWrap(True)
        self.what.setAccessibleName("What the run does")
        layout.addWidget(self.what)
        notes = [
            "The run deletes exactly this preview's plan: a tag pushed again onto "
            "another digest since then is left alone."
        ]
        if figures.unsaved:
            notes.append(
                "These rules are not saved: the run uses them this once; the saved "
                "policy and its schedule stay as they are."
            )
        if figures.retention_s > 0:
            until = datetime.now(UTC) + timedelta(seconds=figures.retention_s)
            notes.append(
                "Deleted tags cannot be pulled any more; they stay restorable (Recently "
                f"deleted) until {until.astimezone().strftime('%Y-%m-%d %H:%M')}."
            )
        else:
            notes.append("<b>This is permanent.</b> Deleted tags cannot be pulled again.")
        self.notes = QLabel("<br><br>".join(notes), self)
        self.notes.setWordWrap(True)
        layout.addWidget(self.notes)
        buttons = QDialogButtonBox(self)
        self.run_button = buttons.addButton("Run now", QDialogButtonBox.ButtonRole.AcceptRole)
        self.run_button.setAccessibleDescription("Delete the tags that go")
        self.run_button.setAutoDefault(False)
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setAccessibleDescription("Close without deleting anything")
        cancel.setDefault(True)
        cancel.setFocus()
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


async def confirm_run(parent: QWidget | None, figures: RunFigures) -> bool:
    """Ask before running. The seam tests may patch; True means run."""
    dialog = ConfirmRunDialog(figures, parent)
    try:
        return await ask(dialog)
    finally:
        dialog.deleteLater()


async def confirm_remove_policy(parent: QWidget | None, scope: str, inherits: str | None) -> bool:
    """Ask before removing a policy (nothing is deleted by removing it). True: remove."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Remove cleanup policy")
    box.setAccessibleName("Remove cleanup policy")
    box.setText(f"Remove the cleanup policy of {scope}?")
    after = (
        f"The policy of {inherits} applies to it again."
        if inherits
        else "No policy applies to it any more: nothing is removed by itself."
    )
    box.setInformativeText(f"No tag is deleted by this, and its schedule stops. {after}")
    remove = box.addButton("Remove policy", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    try:
        await ask(box)
        return box.clickedButton() is remove
    finally:
        box.deleteLater()
