"""Starting: the embedded registry behind the window (status bar, connect, stop on
close, no child left) and the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pytestqt.qtbot import QtBot

from app import __version__
from app.client.credentials import CredentialStore
from app.client.embedded import EmbeddedRegistry, State
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
