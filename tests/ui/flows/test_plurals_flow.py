"""One of a thing is said in the singular wherever the window counts (issue 11,
item 5: "The image and all 1 of its tags", "1 images")."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.ui.common.confirm_delete import ConfirmDeleteDialog
from tests.support import gui
from tests.support.api import api
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch
from tests.ui.flows.test_delete_flow import open_image
from tests.ui.seed import seed_image


def test_counts_of_one_are_singular(registry: RegistryServer, launch: Launch, qtbot: QtBot) -> None:
    seed_image(registry, "acme/web/frontend", ["v1", "v2"], variants=2)
    window = launch(registry)
    browse = window.browse
    gui.open_tree_path(qtbot, window.navigator.tree, ["acme", "PLAT", "web"])
    qtbot.waitUntil(lambda: browse.images.count.text() == "1 image", timeout=WAIT_MS)
    web = gui.tree_index(window.navigator.tree, ["acme", "PLAT", "web"])
    assert web.data(Qt.ItemDataRole.ToolTipRole).startswith("Repository acme/web: 1 image, 2 tags;")
    plat = gui.tree_index(window.navigator.tree, ["acme", "PLAT"])
    assert "2 repositories, 1 image" in plat.data(Qt.ItemDataRole.ToolTipRole)
    open_image(qtbot, window)
    assert browse.tags.count.text() == "2 tags"

    gui.click_row(qtbot, browse.tags.view, "v1")
    gui.key(qtbot, window, Qt.Key.Key_Delete)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    text = gui.shown_text(dialog)
    assert "Delete tag v1 of acme/web/frontend?" in text
    assert "1 tag on 1 manifest will be deleted:" in text
    gui.click_dialog_button(qtbot, dialog, "Delete")
    gui.gone(qtbot, dialog)
    qtbot.waitUntil(lambda: browse.tags.count.text() == "1 tag", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: browse.bulk.label.text() == "Deleted 1 of 1 tag.", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: gui.row_texts(browse.images.view, 0)[1] == "1", timeout=WAIT_MS)

    # The storage view: what awaits review, each count with its noun in the right number.
    gui.click_tab(qtbot, window.views, "Storage")
    panel = window.storage.gc_panel

    def queued() -> str:
        with api(registry) as c:
            gc = c.get("/workspaces/acme/gc").json()
        manifests, blobs = gc["queued_manifests"], gc["queued_blobs"]
        return (
            f"{manifests} manifest{'' if manifests == 1 else 's'}, "
            f"{blobs} blob{'' if blobs == 1 else 's'}"
        )

    qtbot.waitUntil(lambda: panel.queued.text().startswith(queued()), timeout=WAIT_MS)
    gui.click_tab(qtbot, window.views, "Browse")

    gui.click_row(qtbot, browse.images.view, "frontend")
    # As a person does: press it once the action is there (not greyed while checking).
    qtbot.waitUntil(lambda: window.acts.delete_image.isEnabled(), timeout=WAIT_MS)
    gui.key(qtbot, window, Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    assert "The image will be deleted with its only tag" in gui.shown_text(dialog)
    gui.click_dialog_button(qtbot, dialog, "Cancel")
    gui.gone(qtbot, dialog)
