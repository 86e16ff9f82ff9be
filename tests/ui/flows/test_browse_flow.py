"""Browsing as a person does: the tree opened with the mouse, an image clicked, its
tags listed, a tag clicked and its details shown; the same with the keyboard."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.ui.browse import tags_model
from tests.support import gui
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch
from tests.ui.seed import seed_image

TOOLTIP = Qt.ItemDataRole.ToolTipRole


def test_tree_image_tags_details_by_mouse(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    seed_image(registry, "acme/web/frontend", ["v1", "v2"], variants=2)
    seed_image(registry, "acme/api/worker", ["latest"])
    window = launch(registry)
    tree = window.navigator.tree
    browse = window.browse
    # On start the first workspace is selected and its images listed.
    assert gui.texts(tree) == ["acme", "globex"]
    assert gui.texts(tree, 1) == ["2", "0"]
    qtbot.waitUntil(lambda: sorted(gui.texts(browse.images.view)) == ["frontend", "worker"])

    gui.open_tree_path(qtbot, tree, ["acme", "PLAT", "web"])
    qtbot.waitUntil(lambda: gui.texts(browse.images.view) == ["frontend"], timeout=WAIT_MS)
    assert browse.images.title.text() == "Images in acme/web"

    gui.click_row(qtbot, browse.images.view, "frontend")
    qtbot.waitUntil(lambda: sorted(gui.texts(browse.tags.view)) == ["v1", "v2"], timeout=WAIT_MS)
    assert browse.tags.title.text() == "Tags of acme/web/frontend"
    assert window.acts.copy_pull.isEnabled()

    gui.click_row(qtbot, browse.tags.view, "v2")
    details = browse.details
    qtbot.waitUntil(lambda: details.layers_model.rowCount() == 2, timeout=WAIT_MS)
    assert details.heading.text() == "Details of v2"
    digest = details.fields["digest"].text()
    assert digest.startswith("sha256:")
    row = gui.find_row(browse.tags.view, "v2").row()
    assert browse.tags.view.model().index(row, 1).data(Qt.ItemDataRole.ToolTipRole) == digest
    assert gui.texts(details.layers_view, 2) == ["this image only", "this image only"]
    # The pane's size is the tags table's: the manifest with its config and layers,
    # each counted once (more than the layers alone).
    size_tip = browse.tags.view.model().index(row, tags_model.SIZE).data(TOOLTIP)
    assert details.fields["size"].toolTip() == size_tip
    layers_bytes = sum(
        int(str(details.layers_view.model().index(r, 1).data(TOOLTIP)).split()[0].replace(",", ""))
        for r in range(gui.model_rows(details.layers_view))
    )
    assert int(size_tip.split()[0].replace(",", "")) > layers_bytes


def test_arrow_keys_walk_images_and_tags(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    seed_image(registry, "acme/web/frontend", ["a1"])
    seed_image(registry, "acme/api/worker", ["b1", "b2"])
    window = launch(registry)
    images = window.browse.images.view
    tags = window.browse.tags.view
    qtbot.waitUntil(lambda: gui.model_rows(images) == 2, timeout=WAIT_MS)
    gui.click_row(qtbot, images, 0)
    first = gui.texts(images)[0]
    qtbot.waitUntil(lambda: gui.model_rows(tags) > 0, timeout=WAIT_MS)
    gui.key(qtbot, window, Qt.Key.Key_Down)
    second = gui.texts(images)[1]
    want = {"frontend": ["a1"], "worker": ["b1", "b2"]}
    qtbot.waitUntil(lambda: sorted(gui.texts(tags)) == want[second], timeout=WAIT_MS)
    assert window.browse.tags.title.text().endswith(second)
    gui.key(qtbot, window, Qt.Key.Key_Up)
    qtbot.waitUntil(lambda: sorted(gui.texts(tags)) == want[first], timeout=WAIT_MS)
