"""Asking for a password: when none is stored, when there is no keyring, and when
the registry says the credentials are wrong or expired (a 401 mid-session)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from app.client.profiles import Profile
from app.ui.common.dialogs import ask


class LoginDialog(QDialog):
    def __init__(
        self, profile: Profile, reason: str, can_remember: bool, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Log in to {profile.name}")
        self.setAccessibleName("Log in")
        self.setAccessibleDescription(reason)
        layout = QFormLayout(self)
        message = QLabel(reason, self)
        message.setWordWrap(True)
        layout.addRow(message)
        layout.addRow("Registry:", QLabel(profile.base_url, self))
        self.username = QLineEdit(profile.username, self)
        self.username.setAccessibleName("User name")
        self.username.setAccessibleDescription(f"The account to log in to {profile.name} as")
        layout.addRow("&User name:", self.username)
        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password or token")
        self.password.setAccessibleDescription("Never written to settings files or logs")
        layout.addRow("&Password or token:", self.password)
        self.remember = QCheckBox("Remember in the system keyring", self)
        self.remember.setChecked(can_remember)
        self.remember.setEnabled(can_remember)
        if can_remember:
            self.remember.setAccessibleDescription(
                "Keep the password in the system keyring for the next start"
            )
        else:
            # Qt reads the tooltip as the description.
            self.remember.setToolTip("No system keyring is available: asked each time.")
        layout.addRow(self.remember)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setAccessibleDescription("Log in with these credentials")
        cancel = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setAccessibleDescription("Stay disconnected")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addRow(buttons)
        (self.password if profile.username else self.username).setFocus()


async def ask_password(
    parent: QWidget | None, profile: Profile, reason: str, can_remember: bool
) -> tuple[str, str, bool] | None:
    """The seam tests patch: (username, secret, remember) or None when cancelled."""
    dialog = LoginDialog(profile, reason, can_remember, parent)
    try:
        if not await ask(dialog):
            return None
        return dialog.username.text().strip(), dialog.password.text(), dialog.remember.isChecked()
    finally:
        dialog.deleteLater()
