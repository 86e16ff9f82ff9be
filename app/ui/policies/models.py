"""The tables of the Cleanup policies view: the preview's tags (Go/Stay and the rule
that decided), its counts per image, and the history of runs."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QFont

from app.client.cleanup import PolicyRun, PreviewImage, PreviewTag
from app.ui.common.formatting import (
    NEVER,
    format_bytes,
    long_time,
    relative_time,
    short_digest,
    timestamp,
)
from app.ui.common.table_model import Column, Index, PagedTableModel, Runner

TagKey = tuple[int, str]  # (image id, tag): what a one-off exception names

IMAGE, TAG, ACTION, RULE, PUSHED, LAST_PULL, SIZE, DIGEST = range(8)
GO_COLOR = QColor("#c0392b")  # mid-bright: reads on light and dark rows alike
STAY_COLOR = QColor("#2e9e5b")


def tag_key(tag: PreviewTag) -> TagKey:
    return (tag.image_id, tag.tag)


def rule_text(tag: PreviewTag) -> str:
    if tag.rule == "index":
        return "follows its index"
    if tag.rule == "subject":
        return "follows its subject"
    return tag.rule or "no rule"


class PreviewTagsModel(PagedTableModel[PreviewTag]):
    """The preview's tags; rows the user made exceptions of read "Stay (exception)"."""

    def __init__(self, runner: Runner | None = None, parent: QObject | None = None) -> None:
        self.exceptions: set[TagKey] = set()
        columns: list[Column[PreviewTag]] = [
            Column("Image", lambda t: t.image, lambda t: t.image, description="Image name"),
            Column("Tag", lambda t: t.tag, lambda t: t.tag, description="Tag name"),
            Column(
                "Go/Stay",
                self.action_text,
                lambda t: (self.goes(t), t.image, t.tag),
                self.action_tip,
                description="Whether the run deletes the tag (Go) or leaves it (Stay)",
            ),
            Column(
                "Rule",
                rule_text,
                rule_text,
                lambda t: t.reason or None,
                description="The rule that decided (the first keep rule that matched, "
                "else the first remove rule); the tooltip says why",
            ),
            Column(
                "Pushed",
                lambda t: relative_time(t.pushed_at),
                lambda t: t.pushed_at or NEVER,
                lambda t: long_time(t.pushed_at),
                description="When the tag was last pushed",
            ),
            Column(
                "Last pull",
                lambda t: relative_time(t.last_pulled),
                lambda t: t.last_pulled or NEVER,
                lambda t: long_time(t.last_pulled) or "Not pulled since pulls are tracked",
                description="When the tag or its digest was last pulled",
            ),
            Column(
                "Size",
                lambda t: format_bytes(t.size),
                lambda t: t.size,
                lambda t: f"{t.size:,} bytes",
                numeric=True,
                description="Bytes of the manifest, its config and layers",
            ),
            Column(
                "Digest",
                lambda t: short_digest(t.digest),
                lambda t: t.digest,
                lambda t: t.digest,
                description="The digest the plan saw: a tag pushed elsewhere since stays",
            ),
        ]
        super().__init__(
            columns,
            key=tag_key,
            search_text=lambda t: f"{t.image}:{t.tag} {t.rule or ''}",
            runner=runner,
            name="policy-preview-tags",
            parent=parent,
        )
        self._bold = QFont()
        self._bold.setBold(True)

    def goes(self, tag: PreviewTag) -> bool:
        return tag.remove and tag_key(tag) not in self.exceptions

    def action_text(self, tag: PreviewTag) -> str:
        if tag.remove and tag_key(tag) in self.exceptions:
            return "Stay (exception)"
        return "Go" if tag.remove else "Stay"

    def action_tip(self, tag: PreviewTag) -> str:
        if tag.remove and tag_key(tag) in self.exceptions:
            return "Kept this run only: a one-off exception to the plan"
        return "Deleted by the run" if tag.remove else "Left alone by the run"

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if index.isValid() and index.column() == ACTION:
            if role == Qt.ItemDataRole.ForegroundRole:
                return GO_COLOR if self.goes(self.row_object(index.row())) else STAY_COLOR
            if role == Qt.ItemDataRole.FontRole and self.goes(self.row_object(index.row())):
                return self._bold
        return super().data(index, role)

    def set_exceptions(self, keys: set[TagKey]) -> None:
        """Show these rows as exceptions (the Go/Stay column repaints)."""
        self.exceptions = set(keys)
        if self.rowCount():
            self.dataChanged.emit(self.index(0, ACTION), self.index(self.rowCount() - 1, ACTION))


class PreviewImagesModel(PagedTableModel[PreviewImage]):
    def __init__(self, runner: Runner | None = None, parent: QObject | None = None) -> None:
        columns: list[Column[PreviewImage]] = [
            Column("Image", lambda i: i.image, lambda i: i.image, description="Image name"),
            Column(
                "Go",
                lambda i: f"{i.remove:,}",
                lambda i: i.remove,
                numeric=True,
                description="Tags of the image the run deletes",
            ),
            Column(
                "Stay",
                lambda i: f"{i.keep:,}",
                lambda i: i.keep,
                numeric=True,
                description="Tags of the image that stay",
            ),
        ]
        super().__init__(
            columns,
            key=lambda i: i.image_id,
            search_text=lambda i: i.image,
            runner=runner,
            name="policy-preview-images",
            parent=parent,
        )


def trigger_text(run: PolicyRun) -> str:
    if run.trigger == "schedule":
        return "schedule"
    return f"run by {run.actor}" if run.actor else run.trigger


def state_text(run: PolicyRun) -> str:
    return {"running": "running…", "done": "done", "failed": "failed"}.get(run.state, run.state)


def run_summary(run: PolicyRun) -> str:
    """What a run did, in a sentence (the history's tooltip, the view after a run)."""
    if run.running:
        return f"Running: {run.tags_planned:,} tags planned to go."
    parts = [f"Deleted {run.tags_deleted:,} of {run.tags_planned:,} planned tags"]
    if run.tags_changed:
        parts.append(f"{run.tags_changed:,} left alone (pushed again since the preview)")
    if run.tags_missing:
        parts.append(f"{run.tags_missing:,} already gone")
    text = "; ".join(parts) + f". {format_bytes(run.bytes_freed)} left for GC to free."
    if run.error:
        text += f" Failed: {run.error}"
    return text


RUN_COLUMNS: list[Column[PolicyRun]] = [
    Column(
        "When",
        lambda r: relative_time(r.started_at),
        lambda r: timestamp(r.started_at),
        lambda r: long_time(r.started_at),
        description="When the run started",
    ),
    Column(
        "Scope",
        lambda r: r.scope,
        lambda r: r.scope,
        description="The workspace or repository whose policy ran",
    ),
    Column(
        "Trigger",
        trigger_text,
        trigger_text,
        description="Run by hand (by whom) or by the schedule",
    ),
    Column("State", state_text, state_text, run_summary, description="Running, done or failed"),
    Column(
        "Deleted",
        lambda r: f"{r.tags_deleted:,}",
        lambda r: r.tags_deleted,
        run_summary,
        numeric=True,
        description="Tags the run deleted",
    ),
    Column(
        "Left alone",
        lambda r: f"{r.tags_changed:,}",
        lambda r: r.tags_changed,
        lambda r: "Planned tags pushed onto another digest since the preview: not deleted",
        numeric=True,
        description="Planned tags pushed again since the preview (not deleted)",
    ),
    Column(
        "For GC",
        lambda r: format_bytes(r.bytes_freed),
        lambda r: r.bytes_freed,
        lambda r: f"{r.bytes_freed:,} bytes no longer referenced: GC frees them",
        numeric=True,
        description="Bytes the deleted tags left for garbage collection to free",
    ),
]


class RunsModel(PagedTableModel[PolicyRun]):
    def __init__(self, runner: Runner | None = None, parent: QObject | None = None) -> None:
        super().__init__(
            RUN_COLUMNS,
            key=lambda r: r.id,
            search_text=lambda r: f"{r.scope} {r.actor or ''} {r.state}",
            runner=runner,
            name="policy-runs",
            parent=parent,
        )
