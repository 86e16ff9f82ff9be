"""The command line, and the demo's window populated while the demo is seeded.
(Starting the window on the embedded registry, as a user does, is
tests/ui/flows/test_connections_flow.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from pytestqt.qtbot import QtBot

from app import __version__
from app.client.credentials import CredentialStore
from app.client.embedded import ADMIN_USER, EmbeddedRegistry
from tests.support.keyrings import MemoryKeyring
from tests.support.processes import VENV_BIN
from tests.ui.conftest import WindowFactory


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
    qtbot.waitUntil(
        lambda: (
            [c.name for c in window.navigator.nav_model.root.children]
            == ["acme", "globex", "initech"]
        ),
        timeout=60_000,
    )
    qtbot.waitUntil(lambda: "seeding sample data" in window.embedded_label.text(), timeout=60_000)
    assert window.embedded_label.text().startswith("Demo registry: running at http://")

    qtbot.waitUntil(lambda: embedded.seeding is None, timeout=600_000)
    assert embedded.seed_error is None
    # The label follows the seeding's end on the window's next status update.
    qtbot.waitUntil(lambda: "seeding" not in window.embedded_label.text(), timeout=60_000)
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
    shown = {c.name: c.count for c in window.navigator.nav_model.root.children}
    qtbot.waitUntil(
        lambda: {c.name: c.count for c in window.navigator.nav_model.root.children} == counts,
        timeout=60_000,
    )
    assert shown.keys() == counts.keys()
