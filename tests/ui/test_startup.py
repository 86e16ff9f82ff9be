"""Starting: the embedded registry behind the window (status bar, connect, stop on
close, no child left) and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from pytestqt.qtbot import QtBot

from app import __version__
from app.client.credentials import CredentialStore
from app.client.embedded import ADMIN_USER, EmbeddedRegistry, State
from tests.support.keyrings import MemoryKeyring
from tests.support.processes import VENV_BIN, children_of
from tests.ui.conftest import WindowFactory, wait_idle


def test_window_runs_the_embedded_registry(
    tmp_path: Path, make_window: WindowFactory, qtbot: QtBot, memory_keyring: MemoryKeyring
) -> None:
    window = make_window()
    embedded = EmbeddedRegistry(
        tmp_path / "embedded", store=CredentialStore(backend=memory_keyring)
    )
    window.use_embedded(embedded)
    qtbot.waitUntil(lambda: window.backend is not None, timeout=60_000)
    wait_idle(qtbot, window)
    assert embedded.state is State.RUNNING
    assert embedded.pid in children_of(os.getpid())
    assert window.embedded_label.text().startswith(
        "Embedded registry: running at http://127.0.0.1:"
    )
    assert window.connection_label.text().startswith("berth-admin (superuser) @ 127.0.0.1:")
    # A fresh embedded registry has somewhere to push to.
    assert [c.name for c in window.nav_model.root.children] == ["local"]
    assert any(p.embedded for p in window.all_profiles())
    pid = embedded.pid
    window.close()
    qtbot.waitUntil(lambda: window.closed, timeout=30_000)
    assert embedded.state is State.STOPPED
    assert pid not in children_of(os.getpid())


def test_command_line_version() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "berth"), "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"berth {__version__}"
    result = subprocess.run(
        [sys.executable, "-m", "app.ui.main", "--help"], capture_output=True, text=True, check=True
    )
    assert "--demo" in result.stdout


def test_the_demo_window_is_populated_while_the_demo_is_seeded(
    tmp_path: Path, make_window: WindowFactory, qtbot: QtBot, memory_keyring: MemoryKeyring
) -> None:
    """``make run`` on a fresh machine (issue 11 item 10): the window connects as soon
    as the demo's workspaces exist, says how far the seeding is, shows what has
    landed, and once it is done shows the whole demo without an F5."""
    window = make_window()
    embedded = EmbeddedRegistry(
        tmp_path / "demo", store=CredentialStore(backend=memory_keyring), demo=True
    )
    window.use_embedded(embedded)
    qtbot.waitUntil(lambda: window.backend is not None, timeout=120_000)
    assert embedded.seeding is not None, "connected only once the seeding was done"
    assert [c.name for c in window.nav_model.root.children] == ["acme", "globex", "initech"]
    qtbot.waitUntil(lambda: "seeding sample data" in window.embedded_label.text(), timeout=60_000)
    assert window.embedded_label.text().startswith("Demo registry: running at http://")

    qtbot.waitUntil(lambda: embedded.seeding is None, timeout=600_000)
    assert embedded.seed_error is None
    assert "seeding" not in window.embedded_label.text()
    assert embedded.credentials is not None
    auth = httpx.BasicAuth(ADMIN_USER, embedded.credentials.password)
    assert embedded.url is not None
    with httpx.Client(base_url=embedded.url + "/api/v1", auth=auth, timeout=30) as c:
        items = c.get("/workspaces/acme/images", params={"limit": 1000}).json()["items"]
        counts = {w["slug"]: w["image_count"] for w in c.get("/workspaces").json()["items"]}
    # Refreshed by itself: the images of the selected workspace and the tree's counts
    # are the finished demo's.
    names = sorted(i["name"] for i in items)
    images = window.browse.images_model
    qtbot.waitUntil(lambda: sorted(r.name for r in images.rows) == names, timeout=60_000)
    shown = {c.name: c.count for c in window.nav_model.root.children}
    qtbot.waitUntil(
        lambda: {c.name: c.count for c in window.nav_model.root.children} == counts,
        timeout=60_000,
    )
    assert shown.keys() == counts.keys()
