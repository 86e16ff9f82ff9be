"""What a screen reader meets along the way (issue 11, item 6), read from Qt's
accessibility interfaces (what AT-SPI reads): the window says who is connected
where, the status bar's connection and the connection button say which, the GC
panel's values are read with their labels, the confirmation's storage sentence
comes without markup, and a greyed menu item says why it is greyed."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from app.ui.common.confirm_delete import ConfirmDeleteDialog
from tests.support import gui
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch
from tests.ui.flows.test_delete_flow import open_image
from tests.ui.seed import seed_image

NAME = QAccessible.Text.Name
DESCRIPTION = QAccessible.Text.Description


def read(widget: QWidget, what: QAccessible.Text = NAME) -> str:
    iface = QAccessible.queryAccessibleInterface(widget)
    assert iface is not None
    return iface.text(what)


def test_what_a_screen_reader_reads(registry: RegistryServer, launch: Launch, qtbot: QtBot) -> None:
    seed_image(registry, "acme/web/frontend", ["v1", "v2"], variants=2)
    window = launch(registry, user="writer")
    host = registry.host
    assert read(window) == f"Berth — writer @ {host}"
    assert read(window.connection_label) == f"Connection: writer @ {host}"
    assert read(window.connection_button) == "Connection: test registry"

    open_image(qtbot, window)
    tags = window.browse.tags.view
    gui.click_row(qtbot, tags, "v1")
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=WAIT_MS)
    # The context menu's greyed "Delete image…" says why, to the eye and to the ear.
    menu = gui.right_click_index(qtbot, tags, gui.find_row(tags, "v1"))
    item = gui.menu_action(menu, "Delete image…")
    assert not item.isEnabled()
    iface = QAccessible.queryAccessibleInterface(menu)
    assert iface is not None
    entries = [iface.child(i) for i in range(iface.childCount())]
    spoken = [e.text(NAME) for e in entries if e.state().disabled]
    assert any("needs admin permission" in s for s in spoken), spoken
    assert ("Delete tag…", True) in gui.menu_items(menu)
    gui.close_menu(qtbot, menu)

    # The confirmation's storage sentence, read without its markup.
    gui.key(qtbot, window, Qt.Key.Key_Delete)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    storage = read(dialog.storage, DESCRIPTION)
    assert storage.startswith("Nothing is freed until garbage collection runs; then ")
    assert "<" not in storage
    for widget in dialog.findChildren(QWidget):
        assert "<" not in read(widget, DESCRIPTION) + read(widget), widget
    gui.click_dialog_button(qtbot, dialog, "Cancel")
    gui.gone(qtbot, dialog)

    # The GC panel's values come with their labels.
    gui.click_tab(qtbot, window.views, "Storage")
    panel = window.storage.gc_panel
    qtbot.waitUntil(lambda: panel.pending.text() != "—", timeout=WAIT_MS)
    for label, title in (
        (panel.pending, "Pending GC"),
        (panel.queued, "Queued reviews"),
        (panel.next_review, "Next review"),
        (panel.timing, "Timing"),
    ):
        assert read(label) == f"{title}: {label.text()}"
