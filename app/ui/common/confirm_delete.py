"""The delete confirmation: what goes, what stays, what it means for storage.

:func:`confirm_delete` is the seam: the window awaits it, tests patch it. Where the
registry leaves a choice of how to delete (it deletes only by digest, and other
tags share a digest), the dialog offers the ways as radio buttons, the safe one
first, and :func:`choose_delete_method` is the seam that returns the choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.client.berth_api import DeleteImpact, StayingTags
from app.ui.backends.deletion import DeleteMethod, DeletePlan
from app.ui.common.dialogs import ask
from app.ui.common.formatting import counted, format_bytes, plain_text, plural, short_digest

LIST_LIMIT = 2000  # names listed in full; beyond this, a count
MANIFESTS_NAMED = 20  # manifests whose staying tags are named; beyond this, a count


def storage_text(impact: DeleteImpact | None, impact_error: str | None) -> str:
    """The server's delete-impact figures: freed after GC, kept because shared."""
    if impact is None:
        reason = f" ({impact_error})" if impact_error else ""
        return (
            "Nothing is freed until garbage collection runs. How much this frees could "
            f"not be computed{reason}."
        )
    kept = (
        f"<b>{format_bytes(impact.kept)}</b> stays because other tags or images still use "
        f"it ({_blobs(impact.kept_blobs)})"
        if impact.kept
        else "nothing stays for other tags or images"
    )
    return (
        "Nothing is freed until garbage collection runs; then "
        f"<b>{format_bytes(impact.freed)}</b> will be freed "
        f"({_blobs(impact.freed_blobs)} no longer referenced) and {kept}."
    )


def restorable_until(retention_s: float, now: datetime | None = None) -> datetime | None:
    """When what is deleted now leaves the trash (None: no trash, the delete is final)."""
    if retention_s <= 0:
        return None
    return (now or datetime.now(UTC)) + timedelta(seconds=retention_s)


def until_text(when: datetime) -> str:
    """A trash expiry as the user reads it: local time to the minute."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def finality_text(plan: DeletePlan, impact: DeleteImpact | None, error: str | None) -> str:
    """Whether the delete can be undone, as the server's trash retention says: a Berth
    registry with its trash on keeps deletes restorable; with it off, or on a plain OCI
    registry (its impact says no retention), the delete is permanent."""
    what = "images" if plan.whole_image else "tags"
    until = restorable_until(impact.trash_retention_s) if impact is not None else None
    if plan.trash and impact is None:
        reason = f" ({error})" if error else ""
        return (
            f"Deleted {what} cannot be pulled again. Whether they can be restored could "
            f"not be read{reason}."
        )
    if until is None or not plan.trash:
        return (
            f"<b>This is permanent.</b> Deleted {what} cannot be pulled again, and cannot "
            "be restored."
        )
    return (
        f"Deleted {what} cannot be pulled any more; they <b>can be restored until "
        f"{until_text(until)}</b>; then garbage collection frees what only they use."
    )


def _blobs(n: int) -> str:
    return counted(n, "blob")


def image_delete_text(tags: int) -> str:
    if tags == 0:
        return "The image will be deleted with every manifest it holds (it has no tags)."
    if tags == 1:
        return "The image will be deleted with <b>its only tag</b> and every manifest it holds."
    return (
        f"The image will be deleted with <b>all {tags:,} of its tags</b> and every "
        "manifest it holds."
    )


def staying_text(staying: Sequence[StayingTags]) -> str:
    """What stays on the deleted tags' manifests: the true count (the server's), the
    names it gave, and how many more there are beyond them."""
    count = sum(s.count for s in staying)
    one = len(staying) == 1
    parts = []
    for group in staying[:MANIFESTS_NAMED]:
        names = ", ".join(group.names)
        more = group.count - len(group.names)
        if more > 0:
            names = f"{names} … and {more:,} more" if names else counted(more, "tag")
        parts.append(f"{names} ({short_digest(group.digest)})")
    rest = len(staying) - MANIFESTS_NAMED
    if rest > 0:
        parts.append(f"… and {counted(rest, 'more manifest')}")
    return (
        f"{counted(count, 'other tag')} on the same {plural(len(staying), 'manifest')} "
        f"{'stays' if count == 1 else 'stay'}, "
        + ("and so does the manifest: " if one else "and so do those manifests: ")
        + "; ".join(parts)
    )


class ConfirmDeleteDialog(QDialog):
    def __init__(
        self,
        plan: DeletePlan,
        impact: DeleteImpact | None,
        impact_error: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.plan = plan
        image = plan.image
        if plan.whole_image:
            title = f"Delete image {image.full_name}?"
        elif len(plan.tags) == 1:
            title = f"Delete tag {plan.tags[0].name} of {image.full_name}?"
        else:
            title = f"Delete {len(plan.tags):,} tags of {image.full_name}?"
        self.setWindowTitle("Confirm delete")
        self.setAccessibleName("Confirm delete")
        self.setAccessibleDescription(title)
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        heading = QLabel(title, self)
        font = heading.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        heading.setFont(font)
        heading.setWordWrap(True)
        layout.addWidget(heading)

        if plan.whole_image:
            # The server's count when it gave one (the listing's may be stale).
            n = impact.tags if impact is not None and impact.tags is not None else image.tag_count
            what = image_delete_text(n)
        else:
            what = (
                f"<b>{counted(len(plan.tags), 'tag')}</b> on "
                f"{counted(len(plan.digests), 'manifest')} will be deleted:"
            )
        self.what = QLabel(what, self)
        self.what.setWordWrap(True)
        layout.addWidget(self.what)
        if not plan.whole_image:
            names = plan.names
            shown = names[:LIST_LIMIT]
            text = "\n".join(shown)
            if len(names) > len(shown):
                text += f"\n… and {len(names) - len(shown):,} more"
            self.tag_list = QPlainTextEdit(text, self)
            self.tag_list.setReadOnly(True)
            self.tag_list.setAccessibleName("Tags to delete")
            self.tag_list.setAccessibleDescription(
                f"{len(names):,} tag names, one per line"
                + (f", the first {len(shown):,} shown" if len(names) > len(shown) else "")
            )
            self.tag_list.setMaximumHeight(140 if len(names) > 4 else 24 + 18 * len(names))
            self.tag_list.setFont(QFont("monospace"))
            layout.addWidget(self.tag_list)

        staying = plan.staying_tags(impact)
        self.staying: QLabel | None = None
        if staying:
            self.staying = QLabel(staying_text(staying), self)
            self.staying.setWordWrap(True)
            layout.addWidget(self.staying)

        self.methods: list[tuple[QRadioButton, DeleteMethod]] = []
        self.also = QLabel(self)
        self.also.setWordWrap(True)
        self.also.setAccessibleName("Also deleted")
        self.also.hide()
        if plan.methods:
            box = QGroupBox("How to delete", self)
            box.setAccessibleName("How to delete")
            box.setAccessibleDescription(
                "This registry deletes only by digest: choose whether the other tags stay"
            )
            box_layout = QVBoxLayout(box)
            group = QButtonGroup(box)
            for i, method in enumerate(plan.methods):
                radio = QRadioButton(method.label, box)
                radio.setAccessibleDescription(method.explanation)
                radio.setChecked(i == 0)
                group.addButton(radio)
                box_layout.addWidget(radio)
                explanation = QLabel(method.explanation, box)
                explanation.setWordWrap(True)
                explanation.setContentsMargins(22, 0, 0, 4)
                box_layout.addWidget(explanation)
                radio.toggled.connect(self._method_changed)
                self.methods.append((radio, method))
            layout.addWidget(box)
            layout.addWidget(self.also)

        finality = finality_text(plan, impact, impact_error)
        self.finality = QLabel(finality, self)
        self.finality.setWordWrap(True)
        self.finality.setAccessibleName("Restorable")
        self.finality.setAccessibleDescription(plain_text(finality))
        layout.addWidget(self.finality)
        self.restorable = plan.trash and impact is not None and impact.trash_retention_s > 0
        self.impact = impact
        self.impact_error = impact_error
        self.storage = QLabel(self)
        self.storage.setWordWrap(True)
        self.storage.setAccessibleName("Storage")
        layout.addWidget(self.storage)
        self._method_changed()

        self.typed: QLineEdit | None = None
        buttons = QDialogButtonBox(self)
        self.delete_button = buttons.addButton(
            "Delete image" if plan.whole_image else "Delete", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.delete_button.setAccessibleDescription(
            "Delete; restorable for a while" if self.restorable else "Delete permanently"
        )
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setAccessibleDescription("Close without deleting anything")
        cancel.setDefault(True)
        self.delete_button.setAutoDefault(False)
        if plan.whole_image:
            prompt = QLabel(f"Type the image name <b>{image.name}</b> to confirm:", self)
            prompt.setTextFormat(Qt.TextFormat.RichText)
            layout.addWidget(prompt)
            self.typed = QLineEdit(self)
            self.typed.setAccessibleName("Image name")
            self.typed.setAccessibleDescription(f"Type {image.name} to enable Delete image")
            prompt.setBuddy(self.typed)
            layout.addWidget(self.typed)
            self.delete_button.setEnabled(False)
            self.typed.textChanged.connect(
                lambda text: self.delete_button.setEnabled(text.strip() == image.name)
            )
            # Enter in the name field confirms with the name typed (and does nothing
            # without it); it must not reach Cancel, the default button, and close
            # the dialog on someone who mistyped.
            cancel.setDefault(False)
            for button in (cancel, self.delete_button):
                button.setAutoDefault(False)
            self.typed.returnPressed.connect(self.accept)
            self.typed.setFocus()
        else:
            cancel.setFocus()
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @property
    def method(self) -> DeleteMethod | None:
        """The way chosen (None where the plan offers no choice)."""
        return next((m for radio, m in self.methods if radio.isChecked()), None)

    def _method_changed(self, *_: object) -> None:
        method = self.method
        impact = method.impact if method is not None else self.impact
        text = storage_text(impact, self.impact_error)
        if self.plan.storage_note:
            text += " " + self.plan.storage_note
        self.storage.setText(text)
        self.storage.setAccessibleDescription(plain_text(text))
        also = method.also_deleted if method is not None else ()
        if also:
            shown = ", ".join(also[:20]) + (
                f" … and {len(also) - 20:,} more" if len(also) > 20 else ""
            )
            self.also.setText(
                f"<b>Also deleted:</b> {counted(len(also), 'other tag')} on the same "
                f"{plural(len(self.plan.digests), 'manifest')}: {shown}"
            )
        self.also.setVisible(bool(also))
        if self.staying is not None:
            self.staying.setVisible(not also)

    def accept(self) -> None:
        if self.typed is not None and self.typed.text().strip() != self.plan.image.name:
            return  # the typed name is the confirmation: Enter alone does not delete
        super().accept()


async def confirm_delete(
    parent: QWidget | None,
    plan: DeletePlan,
    impact: DeleteImpact | None,
    impact_error: str | None = None,
) -> bool:
    """Ask before deleting. The seam tests patch; True means delete."""
    dialog = ConfirmDeleteDialog(plan, impact, impact_error, parent)
    try:
        return await ask(dialog)
    finally:
        dialog.deleteLater()


async def choose_delete_method(
    parent: QWidget | None, plan: DeletePlan, impact_error: str | None = None
) -> DeleteMethod | None:
    """Ask before deleting where the plan offers several ways (``plan.methods``, each
    with its own impact). The seam tests patch; the way chosen, None to cancel."""
    dialog = ConfirmDeleteDialog(plan, None, impact_error, parent)
    try:
        if not await ask(dialog):
            return None
        return dialog.method
    finally:
        dialog.deleteLater()
