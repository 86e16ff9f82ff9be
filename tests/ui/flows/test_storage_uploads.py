"""The storage view shows what open uploads hold (issue 17 item 5): bytes received
that are not blobs yet, and how many uploads are open; after the upload finishes, a
refresh shows none open and the bytes among the stored ones."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from app.core.units import format_bytes
from tests.registry.oci_helpers import sha256
from tests.support import gui
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch

NAME = "acme/web/app"
DATA = b"u" * 1234


def test_the_storage_view_shows_open_uploads(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    with registry.client("writer") as writer:
        location = writer.post(f"/v2/{NAME}/blobs/uploads/").headers["location"]
        assert writer.patch(location, content=DATA).status_code == 202
    window = launch(registry, "wsadmin")
    gui.click_tab(qtbot, window.views, "Storage")
    card = window.storage.summary.uploading
    qtbot.waitUntil(lambda: card.value.toolTip().startswith("1,234 bytes"), timeout=WAIT_MS)
    assert card.isVisible()
    assert card.title.text() == "Uploading"
    assert card.value.text() == format_bytes(len(DATA))
    assert card.note.text() == "1 upload open"
    assert card.accessibleDescription().startswith(f"{format_bytes(len(DATA))} (1,234 bytes)")

    with registry.client("writer") as writer:
        assert writer.put(location, params={"digest": sha256(DATA)}).status_code == 201
    gui.click_button(qtbot, window.storage.refresh_button)
    qtbot.waitUntil(lambda: card.note.text() == "none open", timeout=WAIT_MS)
    assert card.value.toolTip().startswith("0 bytes")
    assert window.storage.summary.stored.value.toolTip().startswith("1,234 bytes")
