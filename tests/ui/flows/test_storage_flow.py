"""The Storage tab as a person uses it: a tag deleted from its context menu, the
toolbar's "GC: … pending" clicked, the figures read, "Run GC now…" clicked and
confirmed in its dialog, the run shown; and a workspace member, for whom the
button is greyed with the reason."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QToolButton
from pytestqt.qtbot import QtBot

from app.core.units import format_bytes
from app.ui.common.confirm_delete import ConfirmDeleteDialog
from app.ui.storage import gc_panel
from tests.support import gui
from tests.support.api import api
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch
from tests.ui.flows.test_delete_flow import open_image
from tests.ui.seed import server_tags
from tests.ui.storage.test_view import Sums, pushed

Factory = Callable[..., RegistryServer]


def test_context_menu_delete_then_run_gc_now_from_the_storage_tab(
    registry_factory: Factory, launch: Launch, qtbot: QtBot
) -> None:
    server, content = pushed(registry_factory, review_delay=300)
    sums = Sums.of(content)
    freed = sums.exclusive_to("acme/web/frontend", "v1")
    assert freed > 0
    window = launch(server, user="wsadmin")
    indicator = window.findChild(QToolButton, "pendingGc")
    assert indicator is not None
    qtbot.waitUntil(lambda: indicator.text() == "GC: 0 B pending", timeout=WAIT_MS)

    # Right-click v1, pick "Delete tag…", read the confirmation, click Delete.
    open_image(qtbot, window, "frontend")
    tags = window.browse.tags.view
    gui.click_row(qtbot, tags, "v1")
    gui.right_click_and_pick(qtbot, tags, gui.find_row(tags, "v1"), "Delete tag…")
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    text = gui.shown_text(dialog)
    assert "Delete tag v1 of acme/web/frontend?" in text
    assert f"then {format_bytes(freed)} will be freed" in text
    gui.click_dialog_button(qtbot, dialog, "Delete")
    gui.gone(qtbot, dialog)
    qtbot.waitUntil(lambda: sorted(gui.texts(tags)) == ["latest", "v2"], timeout=WAIT_MS)
    assert server_tags(server, "acme/web/frontend") == {"latest", "v2"}

    # The toolbar follows; a click on it opens the Storage tab.
    qtbot.waitUntil(
        lambda: indicator.text() == f"GC: {format_bytes(freed)} pending", timeout=WAIT_MS
    )
    gui.click_button(qtbot, indicator)
    view = window.storage
    assert window.views.currentWidget() is view
    qtbot.waitUntil(lambda: view.summary.pending.bytes == freed, timeout=WAIT_MS)
    panel = view.gc_panel
    qtbot.waitUntil(lambda: panel.pending.text() == format_bytes(freed), timeout=WAIT_MS)
    runs_before = gui.model_rows(panel.runs)

    # Run GC now…: its dialog says what is queued; Cancel runs nothing.
    gui.click_button(qtbot, panel.run_button)
    box = gui.wait_dialog(qtbot, QMessageBox)
    assert box.text() == "Run garbage collection in acme now?"
    assert f"{format_bytes(freed)} is pending" in box.informativeText()
    gui.click_dialog_button(qtbot, box, "Cancel")
    gui.gone(qtbot, box)
    with api(server, "wsadmin") as c:
        assert c.get("/workspaces/acme/gc").json()["pending_bytes"] == freed

    gui.click_button(qtbot, panel.run_button)
    box = gui.wait_dialog(qtbot, QMessageBox)
    gui.click_dialog_button(qtbot, box, "Run GC now")
    gui.gone(qtbot, box)
    qtbot.waitUntil(
        lambda: panel.result.text().startswith(f"GC freed {format_bytes(freed)}"),
        timeout=WAIT_MS,
    )
    qtbot.waitUntil(lambda: view.summary.pending.bytes == 0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: gui.model_rows(panel.runs) == runs_before + 1, timeout=WAIT_MS)
    newest = gui.row_texts(panel.runs, 0)
    assert newest[gc_panel.TRIGGER] == "run now, tag deleted"
    assert newest[gc_panel.FREED] == format_bytes(freed)
    assert newest[gc_panel.MANIFESTS] == "1"
    qtbot.waitUntil(lambda: indicator.text() == "GC: 0 B pending", timeout=WAIT_MS)
    with api(server, "wsadmin") as c:
        assert c.get("/workspaces/acme/gc").json()["pending_bytes"] == 0
        assert c.get("/workspaces/acme/storage").json()["stored"] == sums.stored - freed


def test_run_gc_now_is_greyed_for_a_member_with_the_reason(
    registry_factory: Factory, launch: Launch, qtbot: QtBot
) -> None:
    server, _ = pushed(registry_factory, review_delay=300)
    window = launch(server, user="reader")
    gui.click_tab(qtbot, window.views, "Storage")
    panel = window.storage.gc_panel
    qtbot.waitUntil(lambda: panel.pending.text() != "—", timeout=WAIT_MS)
    assert not panel.run_button.isEnabled()
    assert panel.run_button.toolTip() == (
        "Running GC needs workspace admin in acme; you are not an admin of this workspace."
    )
