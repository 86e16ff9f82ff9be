""" "Test connection" answers plainly for a refused or unresolvable host, a TLS
failure, 401 and 403. (The dialog, switching connections and logging in again are
used as a person does in tests/ui/flows/test_connections_flow.py.)"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
from pytestqt.qtbot import QtBot

from app.client.profiles import Profile
from app.ui.backends import protocol as backends
from app.ui.backends.berth import BerthBackend
from app.ui.connections.dialog import check_connection
from tests.support.registry import PASSWORD, RegistryServer


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
