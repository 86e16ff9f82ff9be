"""Repository names added by hand, for a registry whose catalog is off or hidden
from this account: one name per line, checked as they are typed. The profile
remembers them. :func:`ask_repository_names` is the seam tests patch."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.core.names import InvalidName, validate_repository_path
from app.ui.common.dialogs import ask


def parse_names(text: str) -> tuple[list[str], list[str]]:
    """(names, problems) from one name per line; blank lines are skipped."""
    names: list[str] = []
    problems: list[str] = []
    for line in text.splitlines():
        name = line.strip().strip("/")
        if not name:
            continue
        try:
            validate_repository_path(name)
        except InvalidName as exc:
            problems.append(str(exc))
            continue
        if name not in names:
            names.append(name)
    return names, problems


class RepositoriesDialog(QDialog):
    def __init__(
        self, registry: str, names: Sequence[str], catalog: bool, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Repositories of {registry}")
        self.setAccessibleName("Repositories added by hand")
        self.setAccessibleDescription("Repository names to browse, one per line")
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        why = (
            "The registry lists its repositories in its catalog; add names it does not list."
            if catalog
            else "This registry's catalog is off or hidden from this account, so Berth "
            "cannot list its repositories."
        )
        intro = QLabel(
            f"{why} Type the names to browse, one per line (for example "
            "<tt>team/app</tt>). The connection remembers them.",
            self,
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.text = QPlainTextEdit("\n".join(names), self)
        self.text.setAccessibleName("Repository names")
        self.text.setAccessibleDescription("One repository name per line")
        self.text.setFont(QFont("monospace"))
        self.text.setPlaceholderText("team/app\nlibrary/nginx")
        intro.setBuddy(self.text)
        layout.addWidget(self.text, 1)
        self.problems = QLabel(self)
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #a11;")
        self.problems.setAccessibleName("Problems")
        layout.addWidget(self.problems)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setAccessibleDescription("Browse these repositories")
        cancel = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setAccessibleDescription("Close and keep the list as it was")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.text.textChanged.connect(self._check)
        self._check()
        self.text.setFocus()

    def names(self) -> list[str]:
        return parse_names(self.text.toPlainText())[0]

    def _check(self) -> None:
        _names, problems = parse_names(self.text.toPlainText())
        self.problems.setText(" ".join(problems))
        self.ok.setEnabled(not problems)


async def ask_repository_names(
    parent: QWidget | None, registry: str, names: Sequence[str], catalog: bool
) -> list[str] | None:
    """The seam: the whole list of names added by hand, or None when cancelled."""
    dialog = RepositoriesDialog(registry, names, catalog, parent)
    try:
        if not await ask(dialog):
            return None
        return dialog.names()
    finally:
        dialog.deleteLater()
