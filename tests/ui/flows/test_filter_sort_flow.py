"""Filtering and sorting as a person does: Ctrl+F and typing, clicking column
headers; tag names that are versions in version order by default, while the
registry's own tags/list keeps the distribution spec's order."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.ui.browse import images_model, tags_model
from tests.support import gui
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch
from tests.ui.flows.test_delete_flow import open_image
from tests.ui.seed import seed_image

VERSIONS = ["1.14.1", "1.14.10", "1.14.11", "1.14.2", "1.14.9", "latest", "v1.10", "v1.2"]
NATURAL = ["1.14.1", "1.14.2", "1.14.9", "1.14.10", "1.14.11", "latest", "v1.2", "v1.10"]


def test_version_tags_sort_naturally_by_default_and_the_registry_keeps_its_order(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    seed_image(registry, "acme/web/frontend", VERSIONS, variants=4)
    window = launch(registry)
    open_image(qtbot, window)
    tags = window.browse.tags.view
    qtbot.waitUntil(lambda: len(gui.texts(tags)) == len(VERSIONS), timeout=WAIT_MS)
    assert gui.texts(tags) == NATURAL
    header = tags.horizontalHeader()
    assert header.sortIndicatorSection() == tags_model.TAG
    assert header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
    # A click on the header reverses it; another brings it back.
    gui.click_header(qtbot, tags, tags_model.TAG)
    assert gui.texts(tags) == NATURAL[::-1]
    gui.click_header(qtbot, tags, tags_model.TAG)
    assert gui.texts(tags) == NATURAL
    # The registry's tags/list is the spec's lexical order, as before.
    with registry.client("root") as c:
        listed = c.get("/v2/acme/web/frontend/tags/list").json()["tags"]
    assert listed == sorted(VERSIONS)


def test_filter_with_ctrl_f_and_sort_by_clicking_headers(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    seed_image(registry, "acme/web/small", ["v1"], layer_size=1000)
    seed_image(registry, "acme/web/big", ["v1", "v2"], layer_size=50_000)
    seed_image(registry, "acme/api/medium", ["v1"], layer_size=10_000)
    window = launch(registry)
    images = window.browse.images.view
    qtbot.waitUntil(lambda: len(gui.texts(images)) == 3, timeout=WAIT_MS)
    # Sizes sort as numbers: a click on "Size" is smallest first, another largest first.
    gui.click_header(qtbot, images, images_model.SIZE)
    qtbot.waitUntil(lambda: gui.texts(images) == ["small", "medium", "big"], timeout=WAIT_MS)
    gui.click_header(qtbot, images, images_model.SIZE)
    qtbot.waitUntil(lambda: gui.texts(images) == ["big", "medium", "small"], timeout=WAIT_MS)

    # Ctrl+F in the images table goes to its filter; typing narrows the rows.
    gui.click_row(qtbot, images, "big")
    gui.key(qtbot, window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    panel = window.browse.images
    assert panel.filter.hasFocus()
    gui.type_text(qtbot, panel.filter, "web")  # the filter reads whole names
    assert sorted(gui.texts(images)) == ["big", "small"]
    assert panel.count.text() == "2 shown · 3 images"
    gui.type_text(qtbot, panel.filter, "/s")
    assert gui.texts(images) == ["small"]
    assert panel.count.text() == "1 shown · 3 images"
    gui.replace_text(qtbot, panel.filter, "")
    assert len(gui.texts(images)) == 3

    # Ctrl+F in the tags table goes to the tags' filter.
    gui.click_row(qtbot, images, "big")
    tags = window.browse.tags.view
    qtbot.waitUntil(lambda: gui.texts(tags) == ["v1", "v2"], timeout=WAIT_MS)
    gui.click_row(qtbot, tags, "v2")
    gui.key(qtbot, window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.browse.tags.filter.hasFocus()
    gui.type_text(qtbot, window.browse.tags.filter, "2")
    assert gui.texts(tags) == ["v2"]
    # The selection of a row still shown survives the filter.
    assert gui.selected_texts(tags) == ["v2"]

    # The navigator's filter finds repositories not expanded yet.
    gui.type_text(qtbot, window.navigator.tree_filter, "api")
    qtbot.waitUntil(lambda: gui.texts(window.navigator.tree) == ["acme"], timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: (
            gui.texts(
                window.navigator.tree, 0, gui.tree_index(window.navigator.tree, ["acme", "PLAT"])
            )
            == ["api"]
        ),
        timeout=WAIT_MS,
    )
