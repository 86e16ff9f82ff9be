"""The server decides, whatever the window shows: with the window's checks bypassed
(the delete called as if the greyed action had been enabled by mistake), the
registry refuses and the window says why. Not a flow a user can make: the flows
are in tests/ui/flows."""

from __future__ import annotations

from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from app.ui.common import confirm_delete
from tests.support import gui
from tests.support.registry import RegistryServer
from tests.ui.conftest import WindowFactory, wait_idle
from tests.ui.flows.test_delete_flow import NAME, open_image
from tests.ui.seed import seed_image, server_tags


async def yes(_parent: Any, _plan: Any, _impact: Any, _error: Any = None) -> bool:
    return True


def test_server_403_when_the_ui_is_bypassed(
    registry: RegistryServer,
    make_window: WindowFactory,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_image(registry, NAME, ["keep-1", "keep-2"])
    window = make_window(registry, user="reader")
    open_image(qtbot, window)
    gui.click_row(qtbot, window.browse.tags.view, "keep-1")
    wait_idle(qtbot, window)
    assert not window.acts.delete_tags.isEnabled()
    monkeypatch.setattr(confirm_delete, "confirm_delete", yes)
    # Straight to the delete, as if the action had been enabled by mistake.
    window.browsing.delete_tags(window.browse.tags.selected())
    wait_idle(qtbot, window)
    assert window.error_bar.isVisible()
    assert "write" in window.error_bar.text
    assert "acme/web" in window.error_bar.text
    assert server_tags(registry, NAME) == {"keep-1", "keep-2"}
    assert window.browse.tags_model.rowCount() == 2
    # Image delete too: the server refuses, the row stays.
    assert window.browsing.image is not None
    window.browsing.delete_image(window.browsing.image)
    wait_idle(qtbot, window)
    assert "admin" in window.error_bar.text
    assert window.browse.images_model.rowCount() == 1
