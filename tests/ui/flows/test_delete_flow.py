"""Deleting as a person does: rows dragged over, Delete pressed, the confirmation
read and answered with its buttons; the context menu; Shift+Delete and the typed
image name. What the dialog says is checked against what the server then holds."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.ui.confirm_delete import ConfirmDeleteDialog
from tests.support import gui
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch
from tests.ui.seed import seed_image, server_tags

NAME = "acme/web/frontend"


def open_image(qtbot: QtBot, window: object, name: str = "frontend") -> None:
    """Click the image in the images table and wait for its tags."""
    browse = window.browse  # type: ignore[attr-defined]
    gui.wait_row(qtbot, browse.images.view, name)
    gui.click_row(qtbot, browse.images.view, name)
    qtbot.waitUntil(
        lambda: (
            browse.tags.title.text().endswith(f"/{name}")
            and gui.model_rows(browse.tags.view) > 0
            and not browse.tags_model.loading
        ),
        timeout=WAIT_MS,
    )


def test_drag_select_delete_names_every_staying_tag_with_the_true_count(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    # 42 tags on one manifest: r00..r40 and v1.
    tags = [f"r{i:02d}" for i in range(41)] + ["v1"]
    seed_image(registry, NAME, tags, variants=1)
    window = launch(registry)
    open_image(qtbot, window)
    view = window.browse.tags.view
    qtbot.waitUntil(lambda: gui.model_rows(view) == 42, timeout=WAIT_MS)
    assert gui.texts(view)[:4] == ["r00", "r01", "r02", "r03"]

    gui.drag_rows(qtbot, view, 3, 12)
    chosen = [f"r{i:02d}" for i in range(3, 13)]
    assert gui.selected_texts(view) == chosen
    assert window.acts.delete_tags.text() == "&Delete 10 tags…"
    gui.key(qtbot, window, Qt.Key.Key_Delete)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    text = gui.shown_text(dialog)
    assert "Delete 10 tags of acme/web/frontend?" in text
    assert dialog.tag_list.toPlainText().split("\n") == chosen
    staying = sorted(set(tags) - set(chosen))
    found = re.search(r"(\d+) other tags on the same manifest stay", text)
    assert found is not None, text
    assert int(found.group(1)) == len(staying) == 32
    # Named, all or the first ones and "… and N more" with the true N.
    names_part = text[found.end() :].split(":", 1)[1].split("(sha256")[0]
    named = re.findall(r"\b(r\d\d|v1)\b", names_part)
    more = re.search(r"… and (\d+) more", names_part)
    assert set(named) <= set(staying)
    assert len(named) + (int(more.group(1)) if more else 0) == 32, names_part

    gui.click_dialog_button(qtbot, dialog, "Delete")
    gui.gone(qtbot, dialog)
    qtbot.waitUntil(lambda: gui.model_rows(view) == 32, timeout=WAIT_MS)
    assert server_tags(registry, NAME) == set(staying)
    assert sorted(gui.texts(view)) == staying
