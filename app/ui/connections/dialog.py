"""Connection profiles: add, edit, delete, test, and pick the one to connect to.

Passwords and tokens typed here go to the system keyring (never to settings);
with no keyring they are kept for this session only, and the dialog says so.
:func:`edit_connections` is the seam; :func:`check_connection` gives the plain
answer shown by "Test connection". Plain HTTP is meant for a registry on this
machine: for any other host the dialog warns that passwords and images would
travel unencrypted.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.client.credentials import CredentialStore, KeyringUnavailable
from app.client.errors import (
    AuthenticationFailed,
    ClientError,
    ConnectionFailed,
    PermissionDenied,
    TlsError,
)
from app.client.profiles import KIND_LABELS, KINDS, Profile, problems
from app.ui.backends import protocol as backends
from app.ui.backends.protocol import NamespaceTree
from app.ui.common.dialogs import ask

KIND_TIPS = {
    "berth": "A Berth registry: workspaces, projects, permissions, storage and GC",
    "oci": "Any registry speaking the OCI Distribution API (CNCF Distribution, zot, Harbor, "
    "cloud registries), as far as its API allows",
}
PLAIN_HTTP_WARNING = (
    "Plain HTTP: the password and every image travel unencrypted. Use it only for a "
    "registry on this machine (localhost); use https:// for any other host."
)


def is_local(url: str) -> bool:
    """Whether ``url`` names this machine (where plain HTTP is acceptable)."""
    host = (urlsplit(url.strip()).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_warning(url: str) -> str | None:
    if urlsplit(url.strip()).scheme == "http" and not is_local(url):
        return PLAIN_HTTP_WARNING
    return None


async def check_connection(profile: Profile, secret: str | None) -> tuple[bool, str]:
    """Connect, authenticate and say plainly what happened."""
    try:
        client = backends.create(profile, secret)
    except (ValueError, ClientError) as exc:
        return False, str(exc)
    try:
        identity = await client.identity()
        workspaces = await client.workspaces()
    except TlsError as exc:
        return False, f"TLS failed. {exc.message}"
    except ConnectionFailed as exc:
        return False, f"Cannot connect. {exc.message}"
    except AuthenticationFailed:
        return False, (
            f"Connected to {profile.host}, but it rejected the credentials (401): "
            "check the user name and password or token."
        )
    except PermissionDenied as exc:
        return False, (f"Logged in to {profile.host}, but access is denied (403): {exc.message}")
    except ClientError as exc:
        return False, exc.message
    finally:
        await client.aclose()
    role = " (superuser)" if identity.superuser else ""
    if isinstance(client, NamespaceTree):
        count = sum(w.image_count for w in workspaces)
        seen = f"{count} repositor{'ies' if count != 1 else 'y'} visible"
    else:
        seen = f"{len(workspaces)} workspace{'s' if len(workspaces) != 1 else ''} visible"
    notes = "".join(f" {n}" for n in client.capabilities.notes)
    warning = plain_http_warning(profile.url)
    return True, (
        f"Connected to {profile.host} as {identity.user}{role}; {seen}.{notes}"
        + (f" {warning}" if warning else "")
    )


@dataclass
class ConnectionsResult:
    profiles: list[Profile]
    connect_to: Profile | None
    # Secrets typed in this dialog when they could not be put in the keyring.
    session_secrets: dict[str, str] = field(default_factory=dict)


class ConnectionsDialog(QDialog):
    def __init__(
        self,
        profiles: list[Profile],
        store: CredentialStore,
        current: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connections")
        self.setAccessibleName("Connections")
        self.setAccessibleDescription("Registry connection profiles")
        self.store = store
        self.profiles = [p for p in profiles if not p.embedded]
        self.embedded = [p for p in profiles if p.embedded]
        self.secrets: dict[str, str] = {}  # account → secret typed here
        self.session_secrets: dict[str, str] = {}
        self.connect_to: Profile | None = None
        self._test: asyncio.Task[tuple[bool, str]] | None = None
        self.resize(720, 440)

        outer = QVBoxLayout(self)
        body = QHBoxLayout()
        outer.addLayout(body, 1)
        left = QVBoxLayout()
        self.list = QListWidget(self)
        self.list.setAccessibleName("Profiles")
        self.list.setAccessibleDescription("Saved connections; pick one to edit it")
        left.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.add_button = QPushButton("&New", self)
        self.add_button.setAccessibleDescription("Add a connection")
        self.remove_button = QPushButton("&Remove", self)
        self.remove_button.setAccessibleDescription("Remove the selected connection")
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        left.addLayout(row)
        body.addLayout(left, 1)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.name = QLineEdit(self)
        self.name.setAccessibleName("Connection name")
        self.name.setAccessibleDescription("How this connection is listed")
        form.addRow("Na&me:", self.name)
        self.kind = QComboBox(self)
        self.kind.setAccessibleName("Registry kind")
        for kind in KINDS:
            self.kind.addItem(KIND_LABELS[kind], kind)
            self.kind.setItemData(
                self.kind.count() - 1, KIND_TIPS[kind], Qt.ItemDataRole.ToolTipRole
            )
        self.kind.setAccessibleDescription(
            "Berth registry, or any OCI registry through the Distribution API"
        )
        form.addRow("&Kind:", self.kind)
        self.url = QLineEdit(self)
        self.url.setPlaceholderText("https://registry.example.com")
        self.url.setAccessibleName("Registry URL")
        self.url.setAccessibleDescription(
            "Use https; plain http only for a registry on this machine"
        )
        form.addRow("&URL:", self.url)
        self.http_warning = QLabel(self)
        self.http_warning.setWordWrap(True)
        self.http_warning.setStyleSheet("color: #8a4b00;")
        self.http_warning.setAccessibleName("Plain HTTP warning")
        self.http_warning.hide()
        form.addRow("", self.http_warning)
        self.username = QLineEdit(self)
        self.username.setAccessibleName("User name")
        self.username.setAccessibleDescription("The account to log in as")
        form.addRow("U&ser name:", self.username)
        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password or token")
        self.password.setAccessibleDescription(
            "Kept in the system keyring, never in settings files"
        )
        form.addRow("&Password or token:", self.password)
        self.verify = QCheckBox("&Verify the TLS certificate", self)
        self.verify.setAccessibleDescription("Turn off only for a test registry")
        form.addRow("", self.verify)
        ca_row = QHBoxLayout()
        self.ca_bundle = QLineEdit(self)
        self.ca_bundle.setPlaceholderText("system CAs only")
        self.ca_bundle.setAccessibleName("CA bundle")
        self.ca_bundle.setAccessibleDescription("A PEM file of extra CAs to trust")
        ca_row.addWidget(self.ca_bundle, 1)
        self.browse = QPushButton("&Browse…", self)
        self.browse.setAccessibleDescription("Pick a CA bundle file")
        ca_row.addWidget(self.browse)
        ca_label = QLabel("&CA bundle:", self)
        ca_label.setBuddy(self.ca_bundle)
        form.addRow(ca_label, ca_row)
        self.keyring_note = QLabel(self)
        self.keyring_note.setWordWrap(True)
        reason = store.unavailable_reason
        self.keyring_note.setText(
            "Passwords are stored in the system keyring."
            if reason is None
            else f"Passwords cannot be stored: {reason}. You will be asked each time."
        )
        form.addRow("", self.keyring_note)
        test_row = QHBoxLayout()
        self.test_button = QPushButton("&Test connection", self)
        self.test_button.setAccessibleDescription("Connect and log in with these settings")
        test_row.addWidget(self.test_button)
        test_row.addStretch(1)
        form.addRow("", test_row)
        self.test_result = QLabel(self)
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.test_result.setAccessibleName("Test result")
        self.test_result.setMinimumHeight(self.fontMetrics().height() * 3)
        self.test_result.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        form.addRow("", self.test_result)
        self.problems = QLabel(self)
        self.problems.setStyleSheet("color: #a11;")
        self.problems.setWordWrap(True)
        form.addRow("", self.problems)
        body.addLayout(form, 2)

        buttons = QDialogButtonBox(self)
        self.connect_button = buttons.addButton("C&onnect", QDialogButtonBox.ButtonRole.AcceptRole)
        self.connect_button.setAccessibleDescription("Save and connect to this registry")
        self.save_button = buttons.addButton(QDialogButtonBox.StandardButton.Save)
        self.save_button.setAccessibleDescription("Save the connections without connecting")
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setAccessibleDescription("Close and forget the changes")
        buttons.rejected.connect(self.reject)
        self.connect_button.clicked.connect(lambda: self._finish(connect=True))
        self.save_button.clicked.connect(lambda: self._finish(connect=False))
        outer.addWidget(buttons)

        self.add_button.clicked.connect(self.new_profile)
        self.remove_button.clicked.connect(self.remove_profile)
        self.browse.clicked.connect(self._browse)
        self.url.textChanged.connect(self._url_changed)
        self.test_button.clicked.connect(self.start_test)
        self.list.currentRowChanged.connect(self._show)
        self._editing = -1
        for profile in self.profiles:
            self.list.addItem(QListWidgetItem(profile.name))
        start = next((i for i, p in enumerate(self.profiles) if p.name == current), 0)
        if self.profiles:
            self.list.setCurrentRow(start)
        else:
            self.new_profile()

    # --- the form -----------------------------------------------------------------
    def form_profile(self) -> Profile:
        kind = self.kind.currentData()
        editing = self.profiles[self._editing] if 0 <= self._editing < len(self.profiles) else None
        return Profile(
            name=self.name.text().strip(),
            url=self.url.text().strip(),
            username=self.username.text().strip(),
            kind=kind if kind in KINDS else "berth",
            verify_tls=self.verify.isChecked(),
            ca_bundle=self.ca_bundle.text().strip() or None,
            # Not on the form: names added by hand in the window stay with the profile.
            repositories=editing.repositories if editing is not None else (),
        )

    def _url_changed(self, url: str) -> None:
        warning = plain_http_warning(url)
        self.http_warning.setText(warning or "")
        self.http_warning.setAccessibleDescription(warning or "")
        self.http_warning.setVisible(warning is not None)
        # TLS settings mean nothing for plain HTTP.
        tls = urlsplit(url.strip()).scheme != "http"
        for widget in (self.verify, self.ca_bundle, self.browse):
            widget.setEnabled(tls)

    def _store_form(self) -> bool:
        """Write the form back into the list; False (and say why) if it is invalid."""
        if self._editing < 0:
            return True
        profile = self.form_profile()
        others = [p for i, p in enumerate(self.profiles) if i != self._editing]
        found = problems(profile, others)
        self.problems.setText(" ".join(found))
        if found:
            return False
        self.profiles[self._editing] = profile
        if self.password.text():
            self.secrets[profile.secret_account] = self.password.text()
        item = self.list.item(self._editing)
        if item is not None:
            item.setText(profile.name)
        return True

    def _show(self, row: int) -> None:
        if row == self._editing:
            return
        if self._editing >= 0 and self._editing < len(self.profiles) and not self._store_form():
            self.list.blockSignals(True)
            self.list.setCurrentRow(self._editing)
            self.list.blockSignals(False)
            return
        self._editing = row
        self.test_result.clear()
        if not 0 <= row < len(self.profiles):
            return
        p = self.profiles[row]
        self.name.setText(p.name)
        self.kind.setCurrentIndex(max(0, self.kind.findData(p.kind)))
        self.url.setText(p.url)
        self.username.setText(p.username)
        self.password.setText(self.secrets.get(p.secret_account, ""))
        self.password.setPlaceholderText(self._secret_hint(p))
        self.verify.setChecked(p.verify_tls)
        self.ca_bundle.setText(p.ca_bundle or "")

    def _secret_hint(self, profile: Profile) -> str:
        try:
            stored = self.store.get(profile.secret_account) if profile.username else None
        except KeyringUnavailable:
            return "asked when connecting"
        return "stored in the keyring (type to replace)" if stored else ""

    def new_profile(self) -> None:
        if not self._store_form():
            return
        base, n = "New registry", 1
        names = {p.name for p in self.profiles}
        name = base
        while name in names:
            n += 1
            name = f"{base} {n}"
        self.profiles.append(Profile(name=name, url="https://"))
        self.list.addItem(QListWidgetItem(name))
        self.list.setCurrentRow(len(self.profiles) - 1)
        self.name.setFocus()
        self.name.selectAll()

    def remove_profile(self) -> None:
        row = self.list.currentRow()
        if not 0 <= row < len(self.profiles):
            return
        self._editing = -1
        del self.profiles[row]
        self.list.takeItem(row)
        if self.profiles:
            self.list.setCurrentRow(min(row, len(self.profiles) - 1))
        else:
            self.new_profile()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "CA bundle", "", "PEM files (*.pem *.crt);;All files (*)"
        )
        if path:
            self.ca_bundle.setText(path)

    # --- testing ------------------------------------------------------------------
    def current_secret(self, profile: Profile) -> str | None:
        if self.password.text():
            return self.password.text()
        if profile.secret_account in self.secrets:
            return self.secrets[profile.secret_account]
        try:
            return self.store.get(profile.secret_account)
        except KeyringUnavailable:
            return None

    def start_test(self) -> asyncio.Task[tuple[bool, str]] | None:
        profile = self.form_profile()
        found = problems(profile)
        if found:
            self.test_result.setText(" ".join(found))
            return None
        if self._test is not None and not self._test.done():
            self._test.cancel()
        self.test_result.setText(f"Connecting to {profile.host}…")
        self.test_result.setStyleSheet("")
        self.test_button.setEnabled(False)
        self._test = asyncio.get_event_loop().create_task(
            check_connection(profile, self.current_secret(profile)), name="test-connection"
        )
        self._test.add_done_callback(self._tested)
        return self._test

    def _tested(self, task: asyncio.Task[tuple[bool, str]]) -> None:
        self.test_button.setEnabled(True)
        if task.cancelled():
            return
        ok, text = task.result()
        self.test_result.setText(("✔ " if ok else "✘ ") + text)
        self.test_result.setAccessibleDescription(text)
        self.test_result.setStyleSheet("color: #1a6b2c;" if ok else "color: #a11;")

    # --- closing ------------------------------------------------------------------
    def _finish(self, *, connect: bool) -> None:
        if not self._store_form():
            return
        for account, secret in self.secrets.items():
            try:
                self.store.set(account, secret)
            except KeyringUnavailable:
                self.session_secrets[account] = secret
        row = self.list.currentRow()
        if connect and 0 <= row < len(self.profiles):
            self.connect_to = self.profiles[row]
        self.accept()

    def done(self, result: int) -> None:
        if self._test is not None and not self._test.done():
            self._test.cancel()
        super().done(result)

    def result_value(self) -> ConnectionsResult:
        return ConnectionsResult(
            [*self.embedded, *self.profiles], self.connect_to, dict(self.session_secrets)
        )


async def edit_connections(
    parent: QWidget | None,
    profiles: list[Profile],
    store: CredentialStore,
    current: str | None = None,
) -> ConnectionsResult | None:
    """The seam tests patch: None when cancelled."""
    dialog = ConnectionsDialog(profiles, store, current, parent)
    try:
        if not await ask(dialog):
            return None
        return dialog.result_value()
    finally:
        dialog.deleteLater()
