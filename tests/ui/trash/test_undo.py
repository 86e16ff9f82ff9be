"""Undo right after a delete, as a person does it: tags dragged over and deleted,
then Ctrl+Z; a tag deleted from the context menu, then the status bar's Undo
clicked; an image deleted with its typed name, then Undo. What comes back is
checked in the tables and against what the registry holds. With the trash off
no Undo is offered, and Ctrl+Z brings nothing back."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.ui.common.confirm_delete import ConfirmDeleteDialog
from app.ui.trash import undo
from tests.support import gui
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch
from tests.ui.flows.test_delete_flow import image_rows, open_image, trash_entries
from tests.ui.seed import seed_image, server_tags
from tests.ui.trash.test_trash_view import NAME, WEEK, tag_digests

CTRL = Qt.KeyboardModifier.ControlModifier


def undo_offered(window: Any) -> bool:
    """The status bar shows Undo where a person can click it (laid out inside the
    status bar, not just made visible), and Ctrl+Z (the Edit menu's Undo) is live."""
    undo, status = window.undo, window.statusBar()
    shown = undo.button.isVisible() and not undo.button.visibleRegion().isEmpty()
    placed = undo.widget.width() > 0 and status.rect().contains(undo.widget.geometry())
    return bool(shown and placed and undo.action.isEnabled())


def delete_dragged(qtbot: QtBot, window: Any, first: int, last: int) -> None:
    view = window.browse.tags.view
    gui.drag_rows(qtbot, view, first, last)
    gui.key(qtbot, window, Qt.Key.Key_Delete)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    gui.click_dialog_button(qtbot, dialog, "Delete")
    gui.gone(qtbot, dialog)


def test_ctrl_z_right_after_a_bulk_delete_brings_the_tags_back(
    registry_factory: Any, launch: Launch, qtbot: QtBot
) -> None:
    registry = registry_factory(trash_retention=WEEK)
    seed_image(registry, NAME, ["v1", "v2", "v3"], variants=3)
    before = tag_digests(registry)
    window = launch(registry)
    open_image(qtbot, window)
    view = window.browse.tags.view
    qtbot.waitUntil(lambda: gui.model_rows(view) == 3, timeout=WAIT_MS)
    assert not window.undo.action.isEnabled()  # nothing to undo yet

    delete_dragged(qtbot, window, 0, 1)
    qtbot.waitUntil(lambda: gui.texts(view) == ["v3"], timeout=WAIT_MS)
    assert server_tags(registry, NAME) == {"v3"}
    qtbot.waitUntil(lambda: undo_offered(window), timeout=WAIT_MS)
    assert window.undo.label.text() == f"Deleted 2 tags of {NAME}."
    assert window.undo.button.text() == "Undo"

    gui.key(qtbot, window, Qt.Key.Key_Z, CTRL)
    qtbot.waitUntil(lambda: sorted(gui.texts(view)) == ["v1", "v2", "v3"], timeout=WAIT_MS)
    # The server holds them again, on the digests they had; the trash let them go.
    assert tag_digests(registry) == before
    assert trash_entries(registry) == []
    assert not window.undo.button.isVisible()
    assert not window.undo.action.isEnabled()
    # Undone once: a second Ctrl+Z does nothing more.
    gui.key(qtbot, window, Qt.Key.Key_Z, CTRL)
    assert tag_digests(registry) == before


def test_the_status_bar_undo_after_a_context_menu_delete(
    registry_factory: Any, launch: Launch, qtbot: QtBot
) -> None:
    registry = registry_factory(trash_retention=WEEK)
    seed_image(registry, NAME, ["v1", "v2", "v3"], variants=2)  # v1 and v3 share a digest
    before = tag_digests(registry)
    window = launch(registry)
    open_image(qtbot, window)
    view = window.browse.tags.view
    qtbot.waitUntil(lambda: gui.model_rows(view) == 3, timeout=WAIT_MS)

    gui.click_row(qtbot, view, "v3")
    gui.right_click_and_pick(qtbot, view, gui.find_row(view, "v3"), "Delete tag…")
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    gui.click_dialog_button(qtbot, dialog, "Delete")
    gui.gone(qtbot, dialog)
    qtbot.waitUntil(lambda: sorted(gui.texts(view)) == ["v1", "v2"], timeout=WAIT_MS)
    assert server_tags(registry, NAME) == {"v1", "v2"}
    qtbot.waitUntil(lambda: undo_offered(window), timeout=WAIT_MS)
    assert window.undo.label.text() == f"Deleted {NAME}:v3."

    gui.click_button(qtbot, window.undo.button)
    qtbot.waitUntil(lambda: sorted(gui.texts(view)) == ["v1", "v2", "v3"], timeout=WAIT_MS)
    assert tag_digests(registry) == before
    assert trash_entries(registry) == []
    assert not window.undo.button.isVisible()


def test_undo_after_an_image_delete_brings_the_image_back_with_its_tags(
    registry_factory: Any, launch: Launch, qtbot: QtBot
) -> None:
    registry = registry_factory(trash_retention=WEEK)
    seed_image(registry, NAME, ["v1", "v2"], variants=2)
    seed_image(registry, "acme/web/backend", ["v1"])
    before = tag_digests(registry)
    window = launch(registry)
    open_image(qtbot, window)
    images = window.browse.images.view

    qtbot.waitUntil(lambda: window.acts.delete_image.isEnabled(), timeout=WAIT_MS)
    gui.key(qtbot, window, Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    assert dialog.typed is not None
    gui.type_text(qtbot, dialog.typed, "frontend")
    gui.click_button(qtbot, gui.dialog_button(dialog, "Delete image"))
    gui.gone(qtbot, dialog)
    qtbot.waitUntil(lambda: gui.texts(images) == ["backend"], timeout=WAIT_MS)
    assert image_rows(registry).keys() == {"backend"}
    qtbot.waitUntil(lambda: undo_offered(window), timeout=WAIT_MS)
    assert window.undo.label.text() == f"Deleted image {NAME}."

    gui.click_button(qtbot, window.undo.button)
    qtbot.waitUntil(lambda: sorted(gui.texts(images)) == ["backend", "frontend"], timeout=WAIT_MS)
    assert image_rows(registry).keys() == {"backend", "frontend"}
    assert tag_digests(registry) == before
    assert trash_entries(registry) == []


def test_with_the_trash_off_no_undo_is_offered(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, ["v1", "v2", "v3"], variants=3)
    window = launch(registry)
    open_image(qtbot, window)
    view = window.browse.tags.view
    qtbot.waitUntil(lambda: gui.model_rows(view) == 3, timeout=WAIT_MS)
    delete_dragged(qtbot, window, 0, 1)
    qtbot.waitUntil(lambda: gui.texts(view) == ["v3"], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=WAIT_MS)
    assert not window.undo.button.isVisible()
    assert not window.undo.action.isEnabled()
    gui.key(qtbot, window, Qt.Key.Key_Z, CTRL)
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=WAIT_MS)
    assert server_tags(registry, NAME) == {"v3"}
    assert gui.texts(view) == ["v3"]


def test_the_undo_is_offered_for_a_while_only(
    registry_factory: Any, launch: Launch, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(undo, "OFFER_MS", 1_000)  # instead of 30 s
    registry = registry_factory(trash_retention=WEEK)
    seed_image(registry, NAME, ["v1", "v2"], variants=2)
    window = launch(registry)
    open_image(qtbot, window)
    view = window.browse.tags.view
    qtbot.waitUntil(lambda: gui.model_rows(view) == 2, timeout=WAIT_MS)
    delete_dragged(qtbot, window, 0, 0)
    qtbot.waitUntil(lambda: gui.texts(view) == ["v2"], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: undo_offered(window), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.undo.button.isVisible(), timeout=WAIT_MS)
    assert not window.undo.action.isEnabled()
    gui.key(qtbot, window, Qt.Key.Key_Z, CTRL)
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=WAIT_MS)
    assert server_tags(registry, NAME) == {"v2"}
    assert [e["tag"] for e in trash_entries(registry)] == ["v1"]  # still in Recently deleted
