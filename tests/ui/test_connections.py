"""Connections: the dialog stores profiles without secrets and secrets in the
keyring; "Test connection" answers plainly for a refused or unresolvable host, a
TLS failure, 401 and 403; switching profiles reloads; a 401 mid-session asks to
log in again."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
from pytestqt.qtbot import QtBot

from app.client.credentials import CredentialStore
from app.client.profiles import Profile
from app.ui import backend as backends
from app.ui import connections_dialog, login_dialog
from app.ui.berth_backend import BerthBackend
from app.ui.connections_dialog import ConnectionsDialog, check_connection
from app.ui.settings import Settings
from tests.support.keyrings import MemoryKeyring
from tests.support.registry import PASSWORD, RegistryServer, admin_ok
from tests.ui.conftest import WindowFactory, wait_idle


def _answer(qtbot: QtBot, profile: Profile, secret: str | None) -> tuple[bool, str]:
    task = asyncio.get_event_loop().create_task(check_connection(profile, secret))
    qtbot.waitUntil(task.done, timeout=20_000)
    return task.result()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_test_connection_answers(
    registry: RegistryServer, qtbot: QtBot, qt_loop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = Profile("ok", registry.url, "root")
    ok, text = _answer(qtbot, good, PASSWORD)
    assert ok
    assert "as root (superuser)" in text
    assert "2 workspaces" in text

    ok, text = _answer(qtbot, good, "wrong-password")
    assert not ok
    assert "rejected the credentials (401)" in text

    ok, text = _answer(qtbot, Profile("x", f"http://127.0.0.1:{_free_port()}", "root"), "pw")
    assert not ok
    assert text.startswith("Cannot connect.")
    assert "refused" in text

    ok, text = _answer(qtbot, Profile("x", "http://no-such-host.invalid:5000", "root"), "pw")
    assert not ok
    assert "cannot be resolved" in text

    # TLS: an https URL to a plain-HTTP port fails the handshake.
    tls = Profile("x", registry.url.replace("http://", "https://"), "root")
    ok, text = _answer(qtbot, tls, PASSWORD)
    assert not ok
    assert text.startswith("TLS failed.")

    # 403: a registry that lets the user in but refuses the listing.
    def forbidding(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/me"):
            return httpx.Response(200, json={"user": {"name": "bob", "superuser": False}})
        return httpx.Response(
            403,
            json={
                "error": {"code": "FORBIDDEN", "message": "no access to the API", "detail": None}
            },
        )

    monkeypatch.setitem(
        backends.FACTORIES,
        "berth",
        lambda p, s: BerthBackend(p, s, transport=httpx.MockTransport(forbidding)),
    )
    ok, text = _answer(qtbot, Profile("x", "https://registry.example", "bob"), "pw")
    assert not ok
    assert "access is denied (403)" in text
    assert "no access to the API" in text


def test_dialog_keeps_secrets_in_the_keyring(
    qtbot: QtBot, qt_loop: Any, settings: Settings, memory_keyring: MemoryKeyring
) -> None:
    store = CredentialStore(backend=memory_keyring)
    dialog = ConnectionsDialog([], store)
    qtbot.addWidget(dialog)
    dialog.name.setText("prod")
    dialog.url.setText("https://registry.example.com")
    dialog.username.setText("alice")
    dialog.password.setText("s3cret-value")
    dialog.verify.setChecked(True)
    dialog.connect_button.click()
    result = dialog.result_value()
    assert result.connect_to is not None
    assert result.connect_to.name == "prod"
    assert memory_keyring.secrets[("berth", "alice@https://registry.example.com")] == "s3cret-value"
    settings.set_profiles(result.profiles)
    settings.sync()
    saved = settings.store.fileName()
    with open(saved) as fh:
        text = fh.read()
    assert "registry.example.com" in text
    assert "s3cret-value" not in text
    assert settings.profiles()[0].username == "alice"


def test_dialog_rejects_a_bad_profile(qtbot: QtBot, qt_loop: Any) -> None:
    dialog = ConnectionsDialog([], CredentialStore(backend=MemoryKeyring()))
    qtbot.addWidget(dialog)
    dialog.name.setText("")
    dialog.url.setText("registry.example.com")
    dialog.save_button.click()
    assert dialog.isVisible() or dialog.result() != dialog.DialogCode.Accepted
    assert "Give the connection a name." in dialog.problems.text()
    assert "http://" in dialog.problems.text()


def test_switching_profiles_reloads_everything(
    registry_factory: Any, make_window: WindowFactory, qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring,
) -> None:  # fmt: skip
    first = registry_factory()
    second = registry_factory()
    admin_ok(second.data, "workspace", "add", "initech")
    window = make_window(first)
    assert [c.name for c in window.nav_model.root.children] == ["acme", "globex"]
    other = Profile("second", second.url, "root")
    memory_keyring.secrets[("berth", other.secret_account)] = PASSWORD

    async def pick(parent: Any, profiles: Any, store: Any, current: Any = None) -> Any:
        return connections_dialog.ConnectionsResult([other], other)

    monkeypatch.setattr(connections_dialog, "edit_connections", pick)
    window.acts.connections.trigger()
    wait_idle(qtbot, window)
    assert [c.name for c in window.nav_model.root.children] == ["acme", "globex", "initech"]
    assert window.profile == other
    assert "root (superuser) @ " + other.host in window.connection_label.text()
    assert window.settings.last_profile() == "second"


def test_expired_credentials_ask_to_log_in_again(
    registry: RegistryServer,
    make_window: WindowFactory,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = make_window(registry, user="reader")
    # The password changes (the registry restarts on the same port to pick it up).
    port = registry.url.rsplit(":", 1)[1]
    registry.stop()
    admin_ok(
        registry.data, "user", "passwd", "reader", "--password-stdin", password="a-new-password"
    )
    registry.extra_args = ["--port", port]
    registry.start()
    asked: list[str] = []

    async def relogin(parent: Any, profile: Profile, reason: str, can_remember: bool) -> Any:
        asked.append(reason)
        return profile.username, "a-new-password", True

    monkeypatch.setattr(login_dialog, "ask_password", relogin)
    window.acts.refresh.trigger()
    qtbot.waitUntil(lambda: bool(asked), timeout=20_000)
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: window.backend is not None and not window.ops.busy, timeout=20_000)
    assert "no longer accepted" in asked[0]
    assert window.backend is not None
    assert [c.name for c in window.nav_model.root.children] == ["acme"]
    account = window.profile.secret_account if window.profile else ""
    assert window.store.get(account) == "a-new-password"
