"""What each user may do, as they see it: delete actions greyed with the permission
that is missing, in the toolbar's tooltips and the context menu's entries alike
(the server checks every permission; the window only mirrors them)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolBar, QToolButton
from pytestqt.qtbot import QtBot

from app.ui.main_window import MainWindow
from tests.support import gui
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch
from tests.ui.flows.test_delete_flow import NAME, open_image
from tests.ui.seed import seed_image


def toolbar_button(window: MainWindow, text: str) -> QToolButton:
    toolbar = window.findChild(QToolBar, "mainToolbar")
    assert toolbar is not None
    for button in toolbar.findChildren(QToolButton):
        if button.isVisible() and gui.plain(button.text()) == text:
            return button
    raise AssertionError(f"no {text!r} in the toolbar")


def settled(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=WAIT_MS)


def test_a_reader_sees_why_nothing_can_be_deleted(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, ["v1", "v2"])
    window = launch(registry, user="reader")
    open_image(qtbot, window)
    tags = window.browse.tags.view
    gui.click_row(qtbot, tags, "v1")
    gui.key(qtbot, window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    settled(qtbot, window)
    assert gui.selected_texts(tags) == ["v1", "v2"]
    delete_tags = toolbar_button(window, "Delete 2 tags")
    assert not delete_tags.isEnabled()
    assert delete_tags.toolTip() == (
        "Deleting tags needs write permission on acme/web; you have read permission there."
    )
    delete_image = toolbar_button(window, "Delete image")
    assert not delete_image.isEnabled()
    assert "needs admin permission on acme/web; you have read" in delete_image.toolTip()
    assert toolbar_button(window, "Copy pull command").isEnabled()
    menu = gui.right_click_index(qtbot, tags, gui.find_row(tags, "v2"))
    assert gui.menu_items(menu) == [
        ("Copy pull command", True),
        ("Copy digest", True),
        ("Delete 2 tags… (needs write permission)", False),
        ("Delete image… (needs admin permission)", False),
        ("Refresh", True),
    ]
    gui.close_menu(qtbot, menu)


def test_a_writer_deletes_tags_but_not_the_image(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, ["v1", "v2"])
    window = launch(registry, user="writer")
    open_image(qtbot, window)
    tags = window.browse.tags.view
    gui.click_row(qtbot, tags, "v1")
    settled(qtbot, window)
    assert toolbar_button(window, "Delete tag").isEnabled()
    delete_image = toolbar_button(window, "Delete image")
    assert not delete_image.isEnabled()
    assert delete_image.toolTip() == (
        "Deleting an image needs admin permission on acme/web; you have write permission there."
    )
    # The context menu is made of the same actions, so it agrees.
    menu = gui.right_click_index(qtbot, tags, gui.find_row(tags, "v1"))
    items = dict(gui.menu_items(menu))
    assert items["Delete tag…"] is True
    assert items["Delete image… (needs admin permission)"] is False
    gui.close_menu(qtbot, menu)


def test_a_repository_admin_may_delete_the_image(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, ["v1"])
    window = launch(registry, user="admin")
    open_image(qtbot, window)
    settled(qtbot, window)
    button = toolbar_button(window, "Delete image")
    assert button.isEnabled()
    assert button.toolTip() == "Delete the image with all of its tags"
