"""Every table and tree of the window answers a mouse click the way it answers the
arrow keys (issue 11, item 1: a click on an image row showed nothing, because Qt
makes a pressed row current before it selects it)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.client.profiles import Profile
from app.ui.connections.dialog import ConnectionsDialog
from tests.support import gui
from tests.support.api import api, push_content
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch


def test_images_tags_layers_platforms_shared_layers_and_gc_runs_answer_clicks(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    push_content(registry)
    with api(registry) as c:
        assert c.post("/workspaces/acme/gc/run").status_code == 200
    window = launch(registry)
    browse = window.browse
    images, tags = browse.images.view, browse.tags.view
    qtbot.waitUntil(lambda: len(gui.texts(images)) == 3, timeout=WAIT_MS)

    # Images: a click lists the tags (and selects the row).
    gui.click_row(qtbot, images, "worker")
    assert gui.selected_texts(images) == ["worker"]
    qtbot.waitUntil(lambda: sorted(gui.texts(tags)) == ["1.0", "multi"], timeout=WAIT_MS)

    # Tags: a click shows the details; an index lists its platforms.
    details = browse.details
    gui.click_row(qtbot, tags, "multi")
    assert gui.selected_texts(tags) == ["multi"]
    qtbot.waitUntil(lambda: gui.model_rows(details.children_view) == 2, timeout=WAIT_MS)
    assert details.heading.text() == "Details of multi"
    assert sorted(gui.texts(details.children_view)) == ["linux/amd64", "linux/arm64"]
    assert not details.layers_view.isVisible()
    # Platforms: a click selects the platform's row.
    gui.click_row(qtbot, details.children_view, "linux/arm64")
    assert gui.selected_texts(details.children_view) == ["linux/arm64"]

    gui.click_row(qtbot, tags, "1.0")
    qtbot.waitUntil(lambda: gui.model_rows(details.layers_view) == 2, timeout=WAIT_MS)
    assert details.heading.text() == "Details of 1.0"
    assert details.layers_view.isVisible()
    # Layers: a click selects the layer; the shared base layer says how many share it.
    shared = gui.find_row(details.layers_view, "3 images", 2)
    gui.click_index(qtbot, details.layers_view, shared)
    assert gui.selected_texts(details.layers_view, 2) == ["3 images"]

    # Ctrl+click on the selected image leaves no image current: the tags go.
    gui.click_row(qtbot, images, "worker", modifier=Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: gui.model_rows(tags) == 0, timeout=WAIT_MS)
    assert browse.tags.title.text() == "Tags"
    assert not window.acts.copy_pull.isEnabled()

    # The storage view: the shared layers tree and the GC runs table.
    gui.click_tab(qtbot, window.views, "Storage")
    storage = window.storage
    layers = storage.layers.view
    qtbot.waitUntil(lambda: gui.model_rows(layers) == 1, timeout=WAIT_MS)
    base = layers.model().index(0, 0)
    gui.click_index(qtbot, layers, base)
    assert gui.selected_texts(layers, 2) == ["3"]
    gui.click_expander(qtbot, layers, base)
    qtbot.waitUntil(lambda: layers.isExpanded(base), timeout=WAIT_MS)
    assert sorted(gui.texts(layers, 0, base)) == [
        "acme/api/worker",
        "acme/web/backend",
        "acme/web/frontend",
    ]
    runs = storage.gc_panel.runs
    qtbot.waitUntil(lambda: gui.model_rows(runs) >= 1, timeout=WAIT_MS)
    gui.click_row(qtbot, runs, 0)
    assert len(gui.selected_texts(runs)) == 1


def test_connections_list_answers_clicks(launch: Launch, qtbot: QtBot) -> None:
    window = launch(
        profiles=[
            Profile("staging", "https://staging.example", "alice"),
            Profile("prod", "https://prod.example", "bob", kind="oci"),
        ]
    )
    gui.menu_bar_pick(qtbot, window, "Connection", "Connections…")
    dialog = gui.wait_dialog(qtbot, ConnectionsDialog)
    assert gui.texts(dialog.list) == ["staging", "prod"]
    gui.click_row(qtbot, dialog.list, "prod")
    assert dialog.name.text() == "prod"
    assert dialog.url.text() == "https://prod.example"
    assert dialog.username.text() == "bob"
    assert dialog.kind.currentText() == "OCI registry"
    gui.click_row(qtbot, dialog.list, "staging")
    assert dialog.username.text() == "alice"
    gui.click_dialog_button(qtbot, dialog, "Cancel")
    gui.gone(qtbot, dialog)
