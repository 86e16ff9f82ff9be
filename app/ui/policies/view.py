"""The Cleanup policies tab: the rules of the selected workspace or repository, and
the registry's preview of them beside the editor.

Each edit (once the rules are valid) asks the registry for a new preview after a
short pause; the preview's tags fill the table page by page, with Go/Stay and the
deciding rule, its counts per image fill the table below, and the chart shows the
workspace's storage now and after the run and GC. Rows dragged over in the
preview can be kept this once (one-off exceptions); *Run now…* confirms with the
registry's figures for exactly that plan, runs it, and follows the run until it
ends. The history of the workspace's runs is under the rules.

Permissions are the server's: the view asks who the user is and what they hold on
the scope, and greys what they may not do with a tooltip saying which permission
is missing. Failures go to the window's error bar (through ``ops``) and, for the
preview, beside it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.client.berth_api import BerthApi, Page, Storage
from app.client.cleanup import Policy, PolicyRun, Preview, PreviewImage, PreviewTag
from app.client.errors import ClientError
from app.core.cleanup import Rule
from app.core.permissions import Permission
from app.ui.backends.protocol import Scope
from app.ui.common.formatting import counted, format_bytes
from app.ui.common.operations import Operations
from app.ui.common.table_panel import TablePanel
from app.ui.policies.chart import StorageEffectChart
from app.ui.policies.confirm import RunFigures, confirm_remove_policy, confirm_run
from app.ui.policies.models import (
    ACTION,
    PreviewImagesModel,
    PreviewTagsModel,
    RunsModel,
    TagKey,
    run_summary,
    tag_key,
)
from app.ui.policies.rules_editor import RulesEditor

PREVIEW_DELAY_MS = 400  # typing a number or a pattern: one preview when it pauses
RUN_POLL_S = 0.5
IMPACT_LIMIT = 10_000  # tags one delete-impact request may name (the API's limit)
DESCRIPTION = "Rules that delete old tags, with a preview of exactly what goes and stays"
SHOW = [("All tags", None), ("Go", "remove"), ("Stay", "keep")]


@dataclass(frozen=True, slots=True)
class PolicyScope:
    workspace: str
    repository: str | None = None

    @property
    def label(self) -> str:
        return f"{self.workspace}/{self.repository}" if self.repository else self.workspace


def missing_text(scope: PolicyScope, doing: str, have: str) -> str:
    """Why ``doing`` is greyed: the permission it needs and what the user holds."""
    if scope.repository:
        return f"{doing} needs admin permission on {scope.label}; you have {have} permission there."
    return f"{doing} needs workspace admin in {scope.workspace}; you are {have} there."


class PoliciesView(QWidget):
    ranCleanup = Signal(str)  # a run of this scope's plan ended (scope label)
    previewShown = Signal()  # a preview's figures are on screen

    def __init__(self, ops: Operations, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("policiesView")
        self.ops = ops
        self.api: BerthApi | None = None
        self.scope: PolicyScope | None = None
        self.superuser = False
        self.admin = False
        self.have = "no"  # the user's permission on the scope, in words
        self.policy: Policy | None = None
        self.inherits_from: str | None = None  # the workspace whose policy applies instead
        self.preview: Preview | None = None
        self.storage: Storage | None = None
        self.retention_s = 0.0  # the registry's trash retention (0: deletes are final)
        self.last_run: PolicyRun | None = None
        self.exceptions: set[TagKey] = set()
        self.stale = False
        self._generation = 0
        self._build()

    # === layout ====================================================================
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        outer.setSpacing(6)
        top = QHBoxLayout()
        self.title = QLabel("Cleanup policies", self)
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.title.setFont(font)
        top.addWidget(self.title, 1)
        self.refresh_button = QToolButton(self)
        self.refresh_button.setText("Refresh")
        self.refresh_button.setAccessibleName("Refresh the policy and its preview")
        self.refresh_button.setToolTip("Read the policy, a new preview and the runs again")
        self.refresh_button.clicked.connect(self.refresh)
        top.addWidget(self.refresh_button)
        outer.addLayout(top)

        self.pages = QStackedWidget(self)
        self.placeholder = QLabel(self.pages)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setEnabled(False)
        self.pages.addWidget(self.placeholder)
        body = QSplitter(Qt.Orientation.Horizontal, self.pages)
        body.setObjectName("policiesSplitter")
        body.setChildrenCollapsible(False)
        self.splitter = body

        # Left: the rules, then the history of runs.
        left = QWidget(body)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        rules_box = QGroupBox("Rules", left)
        rules_box.setAccessibleName("Rules")
        rules_layout = QVBoxLayout(rules_box)
        self.editor = RulesEditor(rules_box)
        rules_layout.addWidget(self.editor)
        left_layout.addWidget(rules_box)
        self.runs_model = RunsModel(self.ops.run, self)
        self.runs_panel = TablePanel(
            self.runs_model,
            name="policyRuns",
            title="Runs",
            noun="runs",
            placeholder="Filter by scope, user or state",
            multi=False,
            parent=left,
        )
        self.runs = self.runs_panel.view
        self.runs.setAccessibleName("Cleanup runs")
        self.runs.setAccessibleDescription(
            "The workspace's cleanup runs, newest first: who or which schedule, "
            "tags deleted and left alone, bytes left for GC"
        )
        left_layout.addWidget(self.runs_panel, 1)
        self.run_result = QLabel(left)
        self.run_result.setObjectName("policyRunResult")
        self.run_result.setWordWrap(True)
        self.run_result.setAccessibleName("Last run")
        left_layout.addWidget(self.run_result)

        # Right: the preview.
        right = QWidget(body)
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel("", right)
        self.summary.setObjectName("previewSummary")
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName("Preview")
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right_layout.addWidget(self.summary)
        bar = QHBoxLayout()
        show_label = QLabel("Show:", right)
        self.show_combo = QComboBox(right)
        self.show_combo.setObjectName("previewShow")
        self.show_combo.setAccessibleName("Show")
        self.show_combo.setAccessibleDescription(
            "All tags of the preview, or those that go or stay"
        )
        for text, action in SHOW:
            self.show_combo.addItem(text, action)
        show_label.setBuddy(self.show_combo)
        self.show_combo.currentIndexChanged.connect(self._show_tags)
        bar.addWidget(show_label)
        bar.addWidget(self.show_combo)
        self.keep_button = QPushButton("Keep selected", right)
        self.keep_button.setObjectName("keepSelected")
        self.keep_button.clicked.connect(self.keep_selected)
        bar.addWidget(self.keep_button)
        self.exceptions_label = QLabel("", right)
        self.exceptions_label.setObjectName("exceptionsLabel")
        self.exceptions_label.setAccessibleName("One-off exceptions")
        bar.addWidget(self.exceptions_label)
        self.clear_button = QPushButton("Clear exceptions", right)
        self.clear_button.setObjectName("clearExceptions")
        self.clear_button.clicked.connect(self.clear_exceptions)
        bar.addWidget(self.clear_button)
        bar.addStretch(1)
        self.run_button = QPushButton("Run now…", right)
        self.run_button.setObjectName("runPolicy")
        self.run_button.setAccessibleName("Run now")
        self.run_button.clicked.connect(self.run_now)
        bar.addWidget(self.run_button)
        right_layout.addLayout(bar)

        lower = QSplitter(Qt.Orientation.Vertical, right)
        lower.setChildrenCollapsible(False)
        self.tags_model = PreviewTagsModel(self.ops.run, self)
        self.tags = TablePanel(
            self.tags_model,
            name="previewTags",
            title="Preview",
            noun="tags",
            placeholder="Filter by image, tag or rule",
            multi=True,
            parent=lower,
        )
        self.tags.view.setAccessibleDescription(
            "Every tag of the scope with Go or Stay and the rule that decided; drag, "
            "Shift or Ctrl to select several, then Keep selected to keep them this once"
        )
        self.keep_action = QAction("Keep these this once", self.tags.view)
        self.unkeep_action = QAction("Let these go again", self.tags.view)
        for menu_action in (self.keep_action, self.unkeep_action):
            self.tags.view.addAction(menu_action)
        self.keep_action.triggered.connect(self.keep_selected)
        self.unkeep_action.triggered.connect(self.unkeep_selected)
        self.tags.selectionChanged.connect(self._update_actions)
        bottom = QWidget(lower)
        bottom_layout = QHBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        self.images_model = PreviewImagesModel(self.ops.run, self)
        self.images = TablePanel(
            self.images_model,
            name="previewImages",
            title="Per image",
            noun="images",
            placeholder="Filter images",
            multi=False,
            parent=bottom,
        )
        self.images.view.setAccessibleDescription("How many tags of each image go and stay")
        header = self.images.view.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        self.chart = StorageEffectChart(bottom)
        bottom_layout.addWidget(self.images, 2)
        bottom_layout.addWidget(self.chart, 3)
        lower.addWidget(self.tags)
        lower.addWidget(bottom)
        lower.setStretchFactor(0, 3)
        lower.setStretchFactor(1, 2)
        right_layout.addWidget(lower, 1)

        body.addWidget(left)
        body.addWidget(right)
        body.setStretchFactor(0, 2)
        body.setStretchFactor(1, 5)
        body.setSizes([440, 900])
        self.pages.addWidget(body)
        outer.addWidget(self.pages, 1)

        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(PREVIEW_DELAY_MS)
        self._preview_timer.timeout.connect(self.make_preview)
        self.editor.changed.connect(self._rules_edited)
        self.editor.saveRequested.connect(self.save)
        self.editor.removeRequested.connect(self.remove)
        self._show_placeholder("Select a workspace or a repository in the navigator.")

    # === what to show ==============================================================
    def set_api(self, api: BerthApi | None) -> None:
        """A new connection: a Berth registry's client, or None (no policies there)."""
        self.api = api
        self.superuser = False
        self.scope = None
        self._reset()
        self._show_placeholder(
            "Select a workspace or a repository in the navigator."
            if api is not None
            else "Not connected to a Berth registry."
        )

    def set_scope(self, scope: Scope | None) -> None:
        """The navigator's selection: a workspace or repository has a policy; a
        project has none of its own (its repositories' or its workspace's apply)."""
        if scope is None or self.api is None:
            return  # nothing selected (keep showing the last scope), or no policies here
        if scope.repository:
            wanted: PolicyScope | None = PolicyScope(scope.workspace, scope.repository)
        elif scope.project:
            wanted = None
        else:
            wanted = PolicyScope(scope.workspace)
        if wanted == self.scope and wanted is not None:
            return
        self.scope = wanted
        self._reset()
        if wanted is None:
            self._show_placeholder(
                "Cleanup policies belong to a workspace or a repository: select one in "
                "the navigator (a project has none of its own)."
            )
            return
        self.title.setText(f"Cleanup policy of {wanted.label}")
        self.pages.setCurrentWidget(self.splitter)
        if self.isVisible():
            self.load()
        else:
            self.stale = True

    def _reset(self) -> None:
        self._generation += 1
        self._preview_timer.stop()
        for name in ("policy-scope", "policy-preview", "policy-save", "policy-run",
                     "policy-runs-page", "policy-preview-tags-page",
                     "policy-preview-images-page"):  # fmt: skip
            self.ops.cancel(name)
        self.policy = self.preview = self.storage = None
        self.retention_s = 0.0
        self.inherits_from = None
        self.admin = False
        self.have = "no"
        self.exceptions = set()
        self.tags_model.set_exceptions(set())
        self.tags_model.set_source(None)
        self.images_model.set_source(None)
        self.runs_model.set_source(None)
        self.chart.clear()
        self.summary.setText("")
        self.run_result.setText("")
        self.editor.set_policy((), None, own=False, origin="")
        self._permission_changed()

    def _show_placeholder(self, text: str) -> None:
        self.title.setText("Cleanup policies")
        self.placeholder.setText(text)
        self.pages.setCurrentWidget(self.placeholder)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.stale:
            self.load()

    def refresh(self) -> None:
        """Read again; rules being edited stay as they are (only the preview and the
        runs are read again then)."""
        if self.scope is None or self.api is None:
            return
        if self.policy is not None and self.editor.dirty:
            self.make_preview()
            self._load_runs()
        else:
            self.load()

    def refresh_if_shown(self) -> None:
        if self.isVisible():
            self.refresh()
        else:
            self.stale = self.scope is not None

    # === loading ===================================================================
    def load(self) -> None:
        api, scope = self.api, self.scope
        self.stale = False
        if api is None or scope is None:
            return
        self.ops.run(self._load(api, scope, self._generation), name="policy-scope")
        self._load_runs()

    async def _load(self, api: BerthApi, scope: PolicyScope, generation: int) -> None:
        if not self.superuser:
            self.superuser = (await api.me()).superuser
        admin, have = await self._permission(api, scope)
        policy = await api.cleanup.policy(scope.workspace, scope.repository)
        inherited: Policy | None = None
        if scope.repository and not policy.rules:
            try:
                ws_policy = await api.cleanup.policy(scope.workspace)
            except ClientError:
                ws_policy = None  # not a member of the workspace: nothing to inherit shown
            if ws_policy is not None and ws_policy.rules and scope.repository in ws_policy.covers:
                inherited = ws_policy
        if generation != self._generation:
            return
        self.admin, self.have, self.policy = admin, have, policy
        self.inherits_from = scope.workspace if scope.repository else None
        if inherited is not None:
            origin = (
                f"{scope.label} has no policy of its own: the policy of {scope.workspace} "
                "applies here. Saving makes these rules its own."
            )
            self.editor.set_policy(inherited.rules, inherited.interval, own=False, origin=origin)
        elif policy.rules:
            who = f" by {policy.updated_by}" if policy.updated_by else ""
            origin = f"The policy of {scope.label}, saved{who}."
            if scope.repository:
                origin += f" It overrides the policy of {scope.workspace} here."
            self.editor.set_policy(policy.rules, policy.interval, own=True, origin=origin)
        else:
            origin = f"{scope.label} has no cleanup policy: nothing is removed by itself."
            self.editor.set_policy((), None, own=False, origin=origin)
        self._permission_changed()
        self.make_preview()

    async def _permission(self, api: BerthApi, scope: PolicyScope) -> tuple[bool, str]:
        """Whether the user may set and run this scope's policy, and what they hold
        there in words (for the tooltips of what they may not do)."""
        if self.superuser:
            return True, "admin"
        if scope.repository is None:
            role = next(
                (w.role for w in await api.workspaces() if w.slug == scope.workspace), "guest"
            )
            return role == "admin", ("a workspace admin" if role == "admin" else f"a {role}")
        repos = await api.repositories(scope.workspace)
        permission = next(
            (r.permission for r in repos if r.slug == scope.repository), Permission.NONE
        )
        label = permission.label if permission is not Permission.NONE else "no"
        return permission >= Permission.ADMIN, label

    def _load_runs(self) -> None:
        api, scope = self.api, self.scope
        if api is None or scope is None:
            return

        async def source(
            cursor: str | None, _sort: str | None, _q: str | None, limit: int
        ) -> Page[PolicyRun]:
            return await api.cleanup.runs(scope.workspace, limit=limit, cursor=cursor)

        self.runs_model.set_source(source, server_sort=())

    # === the preview ===============================================================
    def _rules_edited(self) -> None:
        self._update_actions()
        if self.policy is None:
            return  # the policy is being shown, not edited
        if self.editor.rules() is None:
            self.make_preview()  # says at once that the preview waits for a fix
            return
        self._preview_timer.start()

    def make_preview(self) -> None:
        api, scope = self.api, self.scope
        self._preview_timer.stop()
        if api is None or scope is None:
            return
        rules = self.editor.rules()
        if rules is None:
            # A preview of the rules as they were a keystroke ago may still be on its
            # way: it must not replace this line with figures of rules no longer shown.
            self.ops.cancel("policy-preview")
            self.summary.setText("Fix the rules to see what they would remove.")
            self._update_actions()
            return
        # Only who may set rules may preview rules not saved; anyone who may read
        # the scope previews its saved policy.
        given = rules if self.admin else None
        self.summary.setText("Planning…")
        self.ops.run(
            self._preview(api, scope, given, self._generation),
            name="policy-preview",
            # Enabled states depend on whether a preview is still being made.
            on_done=lambda _none: self._update_actions(),
            on_error=self._preview_failed(self._generation),
        )

    async def _preview(
        self, api: BerthApi, scope: PolicyScope, given: tuple[Rule, ...] | None, generation: int
    ) -> None:
        preview = await api.cleanup.preview(scope.workspace, scope.repository, given)
        try:
            # Figures and trash retention of one moment, for the chart and the run.
            overview = await api.storage_overview(scope.workspace)
            storage: Storage | None = overview.storage
            retention = overview.gc.trash_retention_s
        except ClientError:
            storage, retention = None, 0.0  # the preview stands without the chart
        if generation != self._generation:
            return
        self.preview, self.storage, self.retention_s = preview, storage, retention
        self._show_preview()

    def _preview_failed(self, generation: int) -> Any:
        def failed(error: ClientError) -> bool:
            if generation == self._generation:
                self.preview = None
                self.summary.setText(f"No preview: {error.message}")
                self._update_actions()
            return False  # and in the error bar, as every failure

        return failed

    def _show_preview(self) -> None:
        preview = self.preview
        assert preview is not None
        self._show_summary()
        self._show_tags()
        pid = preview.id
        api = self.api
        assert api is not None

        async def images(
            cursor: str | None, _sort: str | None, _q: str | None, limit: int
        ) -> Page[PreviewImage]:
            return await api.cleanup.preview_images(pid, limit=limit, cursor=cursor)

        self.images_model.set_source(images, server_sort=())
        if self.storage is not None:
            self.chart.show_effect(self.storage.referenced, self.storage.pending, preview.freed)
        else:
            self.chart.clear()
        self._update_actions()
        self.previewShown.emit()

    def _show_summary(self) -> None:
        p = self.preview
        if p is None:
            return
        kept = f"; {format_bytes(p.kept)} of theirs stays, shared with other tags" if p.kept else ""
        source = "these rules (not saved)" if self.unsaved(p) else "the saved policy"
        text = (
            f"Preview of {source}: <b>{counted(p.remove, 'tag')} go</b>, "
            f"{counted(p.keep, 'tag')} stay, in {counted(p.images, 'image')}. "
            f"After the run, GC frees <b>{format_bytes(p.freed)}</b>{kept}."
        )
        self.summary.setText(text)
        self.summary.setAccessibleDescription(text.replace("<b>", "").replace("</b>", ""))

    def unsaved(self, preview: Preview) -> bool:
        """Whether the preview plans rules other than the scope's saved policy (an
        admin's previews always send the rules; equal ones are the saved policy)."""
        policy = self.policy
        if preview.saved:
            return False
        return policy is None or not policy.rules or tuple(preview.rules) != policy.rules

    def _show_tags(self, *_: object) -> None:
        preview, api = self.preview, self.api
        if preview is None or api is None:
            self.tags_model.set_source(None)
            return
        pid = preview.id
        action = self.show_combo.currentData()

        async def tags(
            cursor: str | None, _sort: str | None, _q: str | None, limit: int
        ) -> Page[PreviewTag]:
            return await api.cleanup.preview_tags(pid, action=action, limit=limit, cursor=cursor)

        self.tags_model.set_source(tags, server_sort=())
        what = {None: "Preview", "remove": "Tags that go", "keep": "Tags that stay"}[action]
        self.tags.title.setText(what)

    # === one-off exceptions ========================================================
    def _selected_go(self) -> list[PreviewTag]:
        return [t for t in self.tags.selected() if t is not None and t.remove]

    def keep_selected(self) -> None:
        chosen = [tag_key(t) for t in self._selected_go()]
        if not chosen:
            return
        self.exceptions.update(chosen)
        self._exceptions_changed()

    def unkeep_selected(self) -> None:
        chosen = {tag_key(t) for t in self.tags.selected() if t is not None}
        if not chosen & self.exceptions:
            return
        self.exceptions -= chosen
        self._exceptions_changed()

    def clear_exceptions(self) -> None:
        self.exceptions = set()
        self._exceptions_changed()

    def _exceptions_changed(self) -> None:
        self.tags_model.set_exceptions(self.exceptions)
        self.tags.view.resizeColumnToContents(ACTION)  # "Stay (exception)" is wider
        self._update_actions()

    # === permissions and enabled states ============================================
    def _permission_changed(self) -> None:
        scope = self.scope
        if scope is None:
            self.editor.set_editable(False, "Select a workspace or repository")
        elif self.admin:
            self.editor.set_editable(True, "")
        else:
            self.editor.set_editable(
                False, missing_text(scope, "Changing the cleanup policy", self.have)
            )
        self._update_actions()

    def _update_actions(self) -> None:
        scope, preview = self.scope, self.preview
        n = len(self.exceptions)
        self.exceptions_label.setText(f"{counted(n, 'exception')}: kept this run only" if n else "")
        self.exceptions_label.setVisible(bool(n))
        self.clear_button.setVisible(bool(n))
        go = self._selected_go()
        selected = self.tags.selected()
        if not self.admin and scope is not None:
            keep_tip: str | None = missing_text(scope, "Running the cleanup policy", self.have)
        elif not go:
            keep_tip = (
                "Select tags that go (drag over them) to keep them this once"
                if not selected
                else "None of the selected tags goes"
            )
        else:
            keep_tip = None
        self._set(
            self.keep_button,
            keep_tip,
            f"Keep the {counted(len(go), 'selected tag')} that would go, this run only",
        )
        self._set(self.keep_action, keep_tip, "Keep the selected tags this run only")
        unkeep_tip = (
            None
            if any(t is not None and tag_key(t) in self.exceptions for t in selected)
            else "None of the selected tags is an exception"
        )
        self._set(self.unkeep_action, unkeep_tip, "Let the selected exceptions go again")
        self.clear_button.setToolTip("Let every exception go again")

        if scope is None:
            run_tip: str | None = "Select a workspace or repository"
        elif not self.admin:
            run_tip = missing_text(scope, "Running the cleanup policy", self.have)
        elif self.editor.rules() is None:
            run_tip = "Fix the rules first"
        elif (
            preview is None or self.ops.running("policy-preview") or self._preview_timer.isActive()
        ):
            run_tip = "Waiting for the preview"
        elif preview.remove == 0:
            run_tip = "Nothing to run: every tag stays"
        elif self.ops.running("policy-run"):
            run_tip = "A run is going"
        else:
            run_tip = None
        self._set(self.run_button, run_tip,
                  "Delete the tags that go (a confirmation states what it frees)")  # fmt: skip

    @staticmethod
    def _set(widget: QPushButton | QAction, why_not: str | None, tip: str) -> None:
        widget.setEnabled(why_not is None)
        widget.setToolTip(why_not or tip)
        if isinstance(widget, QPushButton):
            widget.setAccessibleDescription(why_not or tip)
        else:
            widget.setStatusTip(why_not or tip)

    # === saving and removing =======================================================
    def save(self) -> None:
        api, scope, rules = self.api, self.scope, self.editor.rules()
        if api is None or scope is None or not rules or not self.editor.save_button.isEnabled():
            return
        interval = self.editor.interval
        generation = self._generation

        async def save() -> None:
            await api.cleanup.set_policy(scope.workspace, scope.repository, rules, interval)
            if generation == self._generation:
                self.load()

        self.ops.run(save(), name="policy-save")

    def remove(self) -> None:
        api, scope = self.api, self.scope
        if api is None or scope is None or not self.editor.remove_button.isEnabled():
            return
        generation = self._generation

        async def remove() -> None:
            if not await confirm_remove_policy(self, scope.label, self.inherits_from):
                return
            await api.cleanup.delete_policy(scope.workspace, scope.repository)
            if generation == self._generation:
                self.load()

        self.ops.run(remove(), name="policy-save")

    # === running ===================================================================
    def run_now(self) -> asyncio.Task[Any] | None:
        api, scope, preview = self.api, self.scope, self.preview
        if api is None or scope is None or preview is None or not self.run_button.isEnabled():
            return None
        return self.ops.run(
            self._run(api, scope, preview, self._generation),
            name="policy-run",
            on_done=lambda _none: self._update_actions(),
            on_error=self._run_failed,
        )

    def _run_failed(self, _error: ClientError) -> bool:
        self._update_actions()
        return False  # reported in the error bar, as every failure

    async def _figures(
        self, api: BerthApi, scope: PolicyScope, preview: Preview
    ) -> tuple[RunFigures, list[TagKey]]:
        """The confirmation's figures for the plan as it will run: the preview's, or,
        with exceptions, the registry's delete impact of the tags that still go."""
        unsaved = self.unsaved(preview)
        if not self.exceptions:
            return RunFigures(scope.label, preview, 0, preview.remove, preview.freed,
                              preview.kept, unsaved, self.retention_s), []  # fmt: skip
        goes: list[TagKey] = []
        cursor: str | None = None
        while True:
            page = await api.cleanup.preview_tags(preview.id, action="remove", limit=1000,
                                                  cursor=cursor)  # fmt: skip
            goes.extend(tag_key(t) for t in page.items)
            cursor = page.next_cursor
            if not cursor or not page.items:
                break
        keep = sorted(k for k in goes if k in self.exceptions)
        kept = set(keep)
        rest = [k for k in goes if k not in kept]
        if not keep:
            return RunFigures(scope.label, preview, 0, preview.remove, preview.freed,
                              preview.kept, unsaved, self.retention_s), []  # fmt: skip
        if len(rest) > IMPACT_LIMIT:
            raise _TooMany(len(rest))
        impact = await api.delete_impact(scope.workspace, tags=rest)
        remove = impact.tags if impact.tags is not None else len(rest)
        figures = RunFigures(scope.label, preview, len(keep), remove, impact.freed, impact.kept,
                             unsaved, self.retention_s)  # fmt: skip
        return figures, keep

    async def _run(
        self, api: BerthApi, scope: PolicyScope, preview: Preview, generation: int
    ) -> None:
        self._update_actions()
        try:
            figures, keep = await self._figures(api, scope, preview)
        except _TooMany as exc:
            self.run_result.setText(
                f"{exc.count:,} tags would go besides the exceptions: more than the "
                f"{IMPACT_LIMIT:,} the registry measures at once. Narrow the rules, or "
                "clear the exceptions to run the plan as previewed."
            )
            return
        if not await confirm_run(self, figures):
            return
        run = await api.cleanup.run_preview(preview.id, keep)
        self.run_result.setText("Running…")
        while run.running:
            await asyncio.sleep(RUN_POLL_S)
            run = await api.cleanup.run(run.id)
        self.last_run = run
        if generation != self._generation:
            return
        self.run_result.setText(run_summary(run))
        self.run_result.setToolTip(run.error or "")
        self.exceptions = set()
        self.tags_model.set_exceptions(set())
        self._load_runs()
        self.make_preview()
        self.ranCleanup.emit(scope.label)


class _TooMany(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count
