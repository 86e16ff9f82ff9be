"""Starting and connecting as a person does: the first start on the embedded
registry (nothing to set up), pushing to it and seeing the image after F5; adding a
connection in Connection → Connections…, testing it, connecting, switching back
with the Connection button; a password that stopped working asked for again."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.ui.connections.dialog import ConnectionsDialog
from app.ui.connections.login_dialog import LoginDialog
from tests.support import gui, oci
from tests.support.keyrings import MemoryKeyring
from tests.support.processes import children_of
from tests.support.registry import PASSWORD, RegistryServer, admin_ok
from tests.ui.flows.conftest import WAIT_MS, Launch

EMBEDDED_RUNNING = re.compile(r"Embedded registry: running at (http://127\.0\.0\.1:\d+)$")


def test_first_start_runs_the_embedded_registry_and_shows_what_is_pushed(
    tmp_path: Path, launch: Launch, qtbot: QtBot, memory_keyring: MemoryKeyring
) -> None:
    data = tmp_path / "embedded"
    window = launch(data_dir=data)
    # The status bar says where the registry runs; the tree has a place to push to.
    found = EMBEDDED_RUNNING.match(window.embedded_label.text())
    assert found is not None, window.embedded_label.text()
    url = found.group(1)
    host = url.removeprefix("http://")
    assert window.connection_label.text() == f"berth-admin (superuser) @ {host}"
    assert window.windowTitle() == f"Berth — berth-admin @ {host}"
    assert gui.texts(window.navigator.tree) == ["local"]
    assert gui.texts(window.navigator.tree, 1) == ["0"]
    pid = window.embedded.pid if window.embedded else None
    assert pid in children_of(os.getpid())

    # Push with the generated password (in the keyring, where a user finds it).
    password = memory_keyring.secrets[("berth", f"embedded:{data}")]
    image = oci.image([oci.random_layer(3000, "first")], label="first")
    with httpx.Client(base_url=url, auth=("berth-admin", password), timeout=30) as c:
        oci.push(c, "local/images/hello", image, "v1")
    gui.click_index(qtbot, window.navigator.tree, gui.tree_index(window.navigator.tree, ["local"]))
    gui.key(qtbot, window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: gui.texts(window.navigator.tree, 1) == ["1"], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: gui.texts(window.browse.images.view) == ["hello"], timeout=WAIT_MS)
    gui.click_row(qtbot, window.browse.images.view, "hello")
    qtbot.waitUntil(lambda: gui.texts(window.browse.tags.view) == ["v1"], timeout=WAIT_MS)

    # Quitting (Ctrl+Q) stops the embedded registry.
    gui.key(qtbot, window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.closed, timeout=WAIT_MS)
    assert pid not in children_of(os.getpid())


def test_add_a_connection_test_it_connect_and_switch_back(
    tmp_path: Path,
    registry: RegistryServer,
    launch: Launch,
    qtbot: QtBot,
    memory_keyring: MemoryKeyring,
) -> None:
    window = launch(data_dir=tmp_path / "embedded")
    assert gui.texts(window.navigator.tree) == ["local"]

    gui.menu_bar_pick(qtbot, window, "Connection", "Connections…")
    dialog = gui.wait_dialog(qtbot, ConnectionsDialog)
    # No saved connection yet: the dialog starts a new one.
    assert gui.texts(dialog.list) == ["New registry"]
    assert dialog.name.hasFocus()
    gui.replace_text(qtbot, dialog.name, "staging")
    assert dialog.kind.currentText() == "Berth registry"
    gui.replace_text(qtbot, dialog.url, "http://registry.example.com:5000")
    # Plain HTTP to another host is warned about; to this machine it is fine.
    assert dialog.http_warning.isVisible()
    assert "unencrypted" in dialog.http_warning.text()
    gui.replace_text(qtbot, dialog.url, registry.url)
    assert not dialog.http_warning.isVisible()
    gui.type_text(qtbot, dialog.username, "wsadmin")
    gui.type_text(qtbot, dialog.password, "not-the-password")
    gui.click_button(qtbot, dialog.test_button)
    qtbot.waitUntil(lambda: dialog.test_result.text().startswith("✘"), timeout=WAIT_MS)
    assert "rejected the credentials (401)" in dialog.test_result.text()
    gui.replace_text(qtbot, dialog.password, PASSWORD)
    gui.click_button(qtbot, dialog.test_button)
    qtbot.waitUntil(lambda: dialog.test_result.text().startswith("✔"), timeout=WAIT_MS)
    assert "as wsadmin; 1 workspace visible" in dialog.test_result.text()
    gui.click_dialog_button(qtbot, dialog, "Connect")
    gui.gone(qtbot, dialog)

    qtbot.waitUntil(lambda: gui.texts(window.navigator.tree) == ["acme"], timeout=WAIT_MS)
    assert window.connection_label.text() == f"wsadmin @ {registry.host}"
    assert window.connection_button.text() == "staging"
    # The password went to the keyring, the settings file holds none.
    assert memory_keyring.secrets[("berth", f"wsadmin@{registry.url}")] == PASSWORD
    window.settings.sync()
    saved = Path(window.settings.store.fileName()).read_text()
    assert "staging" in saved
    assert PASSWORD not in saved
    assert window.settings.last_profile() == "staging"

    # The Connection button lists both; picking the embedded registry switches back.
    gui.click_menu_button_and_pick(qtbot, window.connection_button, "Local registry")
    qtbot.waitUntil(lambda: gui.texts(window.navigator.tree) == ["local"], timeout=WAIT_MS)
    assert window.connection_label.text().startswith("berth-admin (superuser) @ 127.0.0.1:")


def test_a_password_that_stopped_working_is_asked_for_again(
    registry: RegistryServer, launch: Launch, qtbot: QtBot, memory_keyring: MemoryKeyring
) -> None:
    window = launch(registry, user="reader")
    assert gui.texts(window.navigator.tree) == ["acme"]
    # The password changes (the registry restarts on the same port to pick it up).
    port = registry.url.rsplit(":", 1)[1]
    registry.stop()
    admin_ok(
        registry.data, "user", "passwd", "reader", "--password-stdin", password="a-new-password"
    )
    registry.extra_args = ["--port", port]
    registry.start()

    gui.click_index(qtbot, window.navigator.tree, gui.tree_index(window.navigator.tree, ["acme"]))
    gui.key(qtbot, window, Qt.Key.Key_F5)
    dialog = gui.wait_dialog(qtbot, LoginDialog)
    assert "no longer accepted" in gui.shown_text(dialog)
    assert dialog.username.text() == "reader"
    gui.type_text(qtbot, dialog.password, "a-new-password")
    if not dialog.remember.isChecked():
        gui.click_button(qtbot, dialog.remember)
    gui.key(qtbot, dialog, Qt.Key.Key_Return)
    gui.gone(qtbot, dialog)
    qtbot.waitUntil(
        lambda: window.backend is not None and gui.texts(window.navigator.tree) == ["acme"],
        timeout=WAIT_MS,
    )
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=WAIT_MS)
    assert not window.error_bar.isVisible()
    assert memory_keyring.secrets[("berth", f"reader@{registry.url}")] == "a-new-password"


def test_a_connection_that_cannot_be_saved_says_why(launch: Launch, qtbot: QtBot) -> None:
    window = launch()
    gui.menu_bar_pick(qtbot, window, "Connection", "Connections…")
    dialog = gui.wait_dialog(qtbot, ConnectionsDialog)
    gui.replace_text(qtbot, dialog.name, "")
    gui.replace_text(qtbot, dialog.url, "registry.example.com")
    gui.click_dialog_button(qtbot, dialog, "Save")
    assert dialog.isVisible()
    assert "Give the connection a name." in dialog.problems.text()
    assert "http://" in dialog.problems.text()
    gui.click_dialog_button(qtbot, dialog, "Cancel")
    gui.gone(qtbot, dialog)
    assert window.settings.profiles() == []
