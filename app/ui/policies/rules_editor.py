"""The rules of a cleanup policy as rows a person edits: what the rule does (a combo
box), its number or pattern, a button that removes it; the schedule; Save, Revert
and Remove.

Each row is checked as the registry checks it (:meth:`Rule.make`), so a wrong
value is said beside the rules at once and never sent. ``changed`` fires on every
edit; the view previews the rules once they are valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.cleanup import PolicyError, Rule, RuleKind


@dataclass(frozen=True, slots=True)
class KindText:
    label: str  # in the combo box
    unit: str  # after the value
    placeholder: str
    default: str  # the value a new row of this kind starts with


KINDS: dict[RuleKind, KindText] = {
    RuleKind.KEEP_LAST: KindText("Keep last pushed", "tags", "N", "10"),
    RuleKind.KEEP_LAST_PULLED: KindText("Keep last pulled", "tags", "N", "10"),
    RuleKind.KEEP_REGEX: KindText(
        "Keep matching", "(regex)", r"^v?\d+\.\d+\.\d+$", r"^v?\d+\.\d+\.\d+$"
    ),
    RuleKind.REMOVE_OLDER_THAN: KindText("Remove pushed over", "days ago", "D", "90"),
    RuleKind.REMOVE_NOT_PULLED_FOR: KindText("Remove not pulled for", "days", "D", "30"),
}
# What each does, in full (the combo box's item tooltips).
EXPLAINED: dict[RuleKind, str] = {
    RuleKind.KEEP_LAST: "Keep the N most recently pushed tags of each image",
    RuleKind.KEEP_LAST_PULLED: "Keep the N most recently pulled tags of each image",
    RuleKind.KEEP_REGEX: "Keep tags whose name matches the regular expression (anywhere: "
    "anchor it with ^…$)",
    RuleKind.REMOVE_OLDER_THAN: "Remove tags pushed more than D days ago",
    RuleKind.REMOVE_NOT_PULLED_FOR: "Remove tags neither pushed nor pulled in the last D days",
}
ORDER = list(KINDS)

# (label, seconds between scheduled runs; None: not scheduled)
SCHEDULES: list[tuple[str, int | None]] = [
    ("Not scheduled (run by hand)", None),
    ("Every hour", 3600),
    ("Every day", 86_400),
    ("Every week", 7 * 86_400),
]


def schedule_text(seconds: int | None) -> str:
    for label, value in SCHEDULES:
        if value == seconds:
            return label
    assert seconds is not None
    if seconds % 86_400 == 0:
        return f"Every {seconds // 86_400} days"
    if seconds % 3600 == 0:
        return f"Every {seconds // 3600} hours"
    return f"Every {seconds:,} s"


class RuleRow:
    """One rule's widgets in the editor's grid."""

    def __init__(self, editor: RulesEditor, rule: Rule | None) -> None:
        self.kind = QComboBox(editor)
        for i, kind in enumerate(ORDER):
            self.kind.addItem(KINDS[kind].label, kind.value)  # Qt keeps a str, not the enum
            self.kind.setItemData(i, EXPLAINED[kind], Qt.ItemDataRole.ToolTipRole)
        self.value = QLineEdit(editor)
        self.value.setClearButtonEnabled(False)
        self.unit = QLabel(editor)
        self.remove = QToolButton(editor)
        self.remove.setText("✕")
        self.remove.setToolTip("Remove this rule")
        kind = rule.kind if rule is not None else RuleKind.KEEP_LAST
        self.kind.setCurrentIndex(ORDER.index(kind))
        self.value.setText(str(rule.value) if rule is not None else KINDS[kind].default)
        self._show_kind()
        self.kind.currentIndexChanged.connect(self._kind_changed)

    def _kind_changed(self) -> None:
        kind = self.current_kind
        text = self.value.text().strip()
        # A number for a regex (or the reverse) is never what was meant: start over.
        if (kind is RuleKind.KEEP_REGEX) == text.isdigit() or not text:
            self.value.setText(KINDS[kind].default)
        self._show_kind()

    def _show_kind(self) -> None:
        text = KINDS[self.current_kind]
        self.unit.setText(text.unit)
        self.value.setPlaceholderText(text.placeholder)
        self.value.setMinimumWidth(140 if self.current_kind is RuleKind.KEEP_REGEX else 60)
        self.kind.setToolTip(EXPLAINED[self.current_kind])

    @property
    def current_kind(self) -> RuleKind:
        return RuleKind(self.kind.currentData())

    def rule(self) -> Rule:
        """The row's rule; ``PolicyError`` says what is wrong with it."""
        kind = self.current_kind
        text = self.value.text().strip()
        if kind is RuleKind.KEEP_REGEX:
            return Rule.make(kind.value, text)
        try:
            number = int(text.replace(",", ""))
        except ValueError:
            what = "a number of tags" if kind in (RuleKind.KEEP_LAST, RuleKind.KEEP_LAST_PULLED) \
                else "a number of days"  # fmt: skip
            raise PolicyError(f"{KINDS[kind].label}: {what} is needed, not {text!r}") from None
        return Rule.make(kind.value, number)

    def name(self, n: int) -> None:
        """Accessible names that say which rule (screen readers read the grid row by row)."""
        self.kind.setAccessibleName(f"Rule {n}")
        self.kind.setAccessibleDescription("What the rule does")
        self.value.setAccessibleName(f"Rule {n} value")
        self.value.setAccessibleDescription(KINDS[self.current_kind].placeholder)
        self.remove.setAccessibleName(f"Remove rule {n}")

    def widgets(self) -> list[QWidget]:
        return [self.kind, self.value, self.unit, self.remove]


class RulesEditor(QWidget):
    changed = Signal()  # a rule or the schedule was edited
    saveRequested = Signal()
    removeRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("rulesEditor")
        self.rows: list[RuleRow] = []
        self.saved_rules: tuple[Rule, ...] = ()
        self.saved_interval: int | None = None
        self.own = False  # the scope has a policy of its own (Remove makes sense)
        self._editable = False
        self._why_not = "Select a workspace or repository"

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.origin = QLabel(self)
        self.origin.setObjectName("policyOrigin")
        self.origin.setWordWrap(True)
        self.origin.setAccessibleName("Policy")
        layout.addWidget(self.origin)
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(4)
        self.grid.setColumnStretch(1, 1)
        layout.addLayout(self.grid)
        self.empty = QLabel("No rules: nothing is removed.", self)
        self.empty.setEnabled(False)
        layout.addWidget(self.empty)
        self.add_button = QPushButton("Add rule", self)
        self.add_button.setObjectName("addRule")
        self.add_button.setAccessibleDescription("Add a keep or remove rule at the end")
        self.add_button.clicked.connect(self.add_rule)
        add_row = QHBoxLayout()
        add_row.addWidget(self.add_button)
        add_row.addStretch(1)
        layout.addLayout(add_row)
        self.problem = QLabel(self)
        self.problem.setObjectName("rulesProblem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #b3261e;")
        self.problem.setAccessibleName("Problem with the rules")
        self.problem.hide()
        layout.addWidget(self.problem)
        semantics = QLabel(
            "A tag goes only if a remove rule matches and no keep rule does. Rules apply "
            "per image; index children and signatures follow what they belong to.",
            self,
        )
        semantics.setWordWrap(True)
        semantics.setEnabled(False)
        layout.addWidget(semantics)

        schedule = QHBoxLayout()
        schedule_label = QLabel("Schedule:", self)
        self.schedule = QComboBox(self)
        self.schedule.setObjectName("policySchedule")
        self.schedule.setAccessibleName("Schedule")
        self.schedule.setAccessibleDescription("How often the registry runs the saved policy")
        schedule_label.setBuddy(self.schedule)
        for label, seconds in SCHEDULES:
            self.schedule.addItem(label, seconds)
        self.schedule.currentIndexChanged.connect(self._edited)
        schedule.addWidget(schedule_label)
        schedule.addWidget(self.schedule, 1)
        layout.addLayout(schedule)

        buttons = QHBoxLayout()
        self.save_button = QPushButton("Save policy", self)
        self.save_button.setObjectName("savePolicy")
        self.revert_button = QPushButton("Revert", self)
        self.revert_button.setObjectName("revertPolicy")
        self.revert_button.setAccessibleDescription("Show the saved rules again")
        self.remove_button = QPushButton("Remove policy…", self)
        self.remove_button.setObjectName("removePolicy")
        self.save_button.clicked.connect(self.saveRequested)
        self.revert_button.clicked.connect(self.revert)
        self.remove_button.clicked.connect(self.removeRequested)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.revert_button)
        buttons.addStretch(1)
        buttons.addWidget(self.remove_button)
        layout.addLayout(buttons)
        self._update()

    # --- contents -------------------------------------------------------------------
    def set_policy(
        self, rules: Sequence[Rule], interval: int | None, *, own: bool, origin: str
    ) -> None:
        """Show a policy as saved (the editor's rows become these)."""
        self.saved_rules = tuple(rules)
        self.saved_interval = interval
        self.own = own
        self.origin.setText(origin)
        self.origin.setAccessibleDescription(origin)
        self._fill(self.saved_rules, interval)

    def _fill(self, rules: Sequence[Rule], interval: int | None) -> None:
        for row in self.rows:
            for widget in row.widgets():
                self.grid.removeWidget(widget)
                widget.deleteLater()
        self.rows = []
        for rule in rules:
            self._append(rule)
        self.schedule.blockSignals(True)
        index = self.schedule.findData(interval)
        if index < 0:
            self.schedule.addItem(schedule_text(interval), interval)
            index = self.schedule.count() - 1
        self.schedule.setCurrentIndex(index)
        self.schedule.blockSignals(False)
        self._edited()

    def _append(self, rule: Rule | None) -> RuleRow:
        row = RuleRow(self, rule)
        n = len(self.rows)
        for column, widget in enumerate(row.widgets()):
            self.grid.addWidget(widget, n, column)
            widget.setEnabled(self._editable)
        row.kind.currentIndexChanged.connect(self._edited)
        row.value.textChanged.connect(self._edited)
        row.remove.clicked.connect(lambda _c=False, r=row: self._remove(r))
        self.rows.append(row)
        row.name(n + 1)
        return row

    def add_rule(self) -> None:
        row = self._append(None)
        self._relayout()
        self._edited()
        row.kind.setFocus(Qt.FocusReason.OtherFocusReason)

    def _remove(self, row: RuleRow) -> None:
        self.rows.remove(row)
        for widget in row.widgets():
            self.grid.removeWidget(widget)
            widget.deleteLater()
        self._relayout()
        self._edited()

    def _relayout(self) -> None:
        for n, row in enumerate(self.rows):
            for column, widget in enumerate(row.widgets()):
                self.grid.addWidget(widget, n, column)
            row.name(n + 1)

    def revert(self) -> None:
        self._fill(self.saved_rules, self.saved_interval)

    # --- reading --------------------------------------------------------------------
    def rules(self) -> tuple[Rule, ...] | None:
        """The rules as edited, or None while one of them is wrong."""
        try:
            return tuple(row.rule() for row in self.rows)
        except PolicyError:
            return None

    @property
    def interval(self) -> int | None:
        value = self.schedule.currentData()
        return value if isinstance(value, int) else None

    @property
    def dirty(self) -> bool:
        """Edited since the policy was shown (or saved)."""
        return self.rules() != self.saved_rules or self.interval != self.saved_interval

    def problems(self) -> list[str]:
        out = []
        for n, row in enumerate(self.rows, 1):
            try:
                row.rule()
            except PolicyError as exc:
                out.append(f"Rule {n}: {exc}")
        return out

    # --- state ----------------------------------------------------------------------
    def set_editable(self, editable: bool, why_not: str) -> None:
        """Mirror the server: only who may set the policy edits it (``why_not`` is
        the tooltip that says what is missing)."""
        self._editable = editable
        self._why_not = why_not
        self._update()

    def _edited(self, *_: object) -> None:
        self._update()
        self.changed.emit()

    def _update(self) -> None:
        editable = self._editable
        problems = self.problems()
        self.problem.setText("\n".join(problems))
        self.problem.setAccessibleDescription(" ".join(problems))
        self.problem.setVisible(bool(problems))
        self.empty.setVisible(not self.rows)
        for row in self.rows:
            for widget in row.widgets():
                widget.setEnabled(editable)
                widget.setToolTip("" if editable else self._why_not)
            row.remove.setToolTip("Remove this rule" if editable else self._why_not)
        for widget in (self.add_button, self.schedule):
            widget.setEnabled(editable)
            widget.setToolTip("" if editable else self._why_not)
        dirty = self.dirty
        rules = self.rules()
        if not editable:
            save_tip = revert_tip = remove_tip = self._why_not
        else:
            save_tip = (
                "Fix the rules first" if rules is None
                else "Add a rule first (Remove policy… removes it)" if not rules
                else "Save these rules as the policy" if dirty or not self.own
                else "Nothing changed since it was saved"
            )  # fmt: skip
            revert_tip = "Show the saved rules again" if dirty else "Nothing changed"
            remove_tip = (
                "Remove this policy (nothing is deleted)"
                if self.own
                else "There is no policy of its own to remove"
            )
        self._button(
            self.save_button, editable and (dirty or not self.own) and bool(rules), save_tip
        )
        self._button(self.revert_button, editable and dirty, revert_tip)
        self._button(self.remove_button, editable and self.own, remove_tip)

    @staticmethod
    def _button(button: QPushButton, enabled: bool, tip: str) -> None:
        button.setEnabled(enabled)
        button.setToolTip(tip)
        button.setAccessibleDescription(tip)
