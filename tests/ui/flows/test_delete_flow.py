"""Deleting as a person does: rows dragged over, Delete pressed, the confirmation
read and answered with its buttons; the context menu; Shift+Delete and the typed
image name. What the dialog says is checked against what the server then holds."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolButton
from pytestqt.qtbot import QtBot

from app.core.units import format_bytes
from app.ui.browse import tags_model
from app.ui.common.confirm_delete import ConfirmDeleteDialog
from tests.support import gui
from tests.support.api import api, as_listed
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
    # Cancel first: nothing goes.
    gui.key(qtbot, window, Qt.Key.Key_Delete)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    assert dialog.focusWidget() is gui.dialog_button(dialog, "Cancel")  # the safe default
    gui.click_dialog_button(qtbot, dialog, "Cancel")
    gui.gone(qtbot, dialog)
    assert server_tags(registry, NAME) == set(tags)
    assert gui.model_rows(view) == 42
    assert gui.selected_texts(view) == chosen

    gui.key(qtbot, window, Qt.Key.Key_Delete)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    text = gui.shown_text(dialog)
    assert "Delete 10 tags of acme/web/frontend?" in text
    # This registry runs with its trash off: the delete is final, and said so.
    assert "This is permanent. Deleted tags cannot be pulled again, and cannot be restored." in text
    assert "restored until" not in text
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
    # The image row and the rows that shared the digest follow.
    images = window.browse.images.view
    qtbot.waitUntil(lambda: gui.row_texts(images, 0)[1] == "32", timeout=WAIT_MS)
    # r00's other tags: 31 now, those named and the rest counted.
    others = gui.row_texts(view, 0)[tags_model.OTHER_TAGS]
    named, more = others.split(" (+")
    assert len(named.split(", ")) + int(more.split()[0]) == 31
    assert not set(named.split(", ")) & set(chosen)


WEEK = 7 * 24 * 3600.0
UNTIL = re.compile(r"can be restored until (\d{4}-\d\d-\d\d \d\d:\d\d)")


def trash_entries(registry: RegistryServer, workspace: str = "acme") -> list[dict[str, Any]]:
    with api(registry) as c:
        r = c.get(f"/workspaces/{workspace}/trash", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])


def shown_until(text: str) -> dt.datetime:
    """The dialog's "restorable until DATE" (local time to the minute), as a UTC time."""
    found = UNTIL.search(text)
    assert found is not None, text
    return dt.datetime.strptime(found.group(1), "%Y-%m-%d %H:%M").astimezone(dt.UTC)


def test_with_the_trash_on_the_confirmations_say_until_when_a_delete_can_be_restored(
    registry_factory: Any, launch: Launch, qtbot: QtBot
) -> None:
    registry = registry_factory(trash_retention=WEEK)
    seed_image(registry, NAME, ["v1", "v2", "v3"], variants=3)
    seed_image(registry, "acme/web/backend", ["v1"])
    window = launch(registry)
    open_image(qtbot, window)
    view = window.browse.tags.view
    qtbot.waitUntil(lambda: gui.model_rows(view) == 3, timeout=WAIT_MS)

    # A tag: dragged over, Delete pressed, the dialog read.
    gui.drag_rows(qtbot, view, 0, 1)
    assert gui.selected_texts(view) == ["v1", "v2"]
    gui.key(qtbot, window, Qt.Key.Key_Delete)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    text = gui.shown_text(dialog)
    assert "This is permanent" not in text
    assert "cannot be restored" not in text
    assert "Deleted tags cannot be pulled any more; they can be restored until" in text
    until = shown_until(text)
    gui.click_dialog_button(qtbot, dialog, "Delete")
    gui.gone(qtbot, dialog)
    qtbot.waitUntil(lambda: gui.texts(view) == ["v3"], timeout=WAIT_MS)
    # The server holds both in its trash until the time the dialog said (to its minute).
    entries = trash_entries(registry)
    assert sorted(e["tag"] for e in entries) == ["v1", "v2"]
    for entry in entries:
        expires = dt.datetime.fromisoformat(entry["expires_at"])
        assert until <= expires < until + dt.timedelta(minutes=2), (until, expires)

    # The image: Shift+Delete, the same promise for images.
    # As a person does: press it once the action is there (not greyed while checking).
    qtbot.waitUntil(lambda: window.acts.delete_image.isEnabled(), timeout=WAIT_MS)
    gui.key(qtbot, window, Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    text = gui.shown_text(dialog)
    assert "Delete image acme/web/frontend?" in text
    assert "Deleted images cannot be pulled any more; they can be restored until" in text
    assert "This is permanent" not in text
    image_until = shown_until(text)
    gui.click_dialog_button(qtbot, dialog, "Cancel")
    gui.gone(qtbot, dialog)
    assert until <= image_until < until + dt.timedelta(minutes=2)
    assert server_tags(registry, NAME) == {"v3"}


def pending_gc_text(registry: RegistryServer, workspace: str = "acme") -> str:
    with api(registry) as c:
        pending = c.get(f"/workspaces/{workspace}/storage").json()["pending"]
    return f"GC: {format_bytes(pending)} pending"


def image_rows(registry: RegistryServer, workspace: str = "acme") -> dict[str, dict[str, Any]]:
    with api(registry) as c:
        items = c.get(f"/workspaces/{workspace}/images").json()["items"]
    return {i["name"]: i for i in items}


def test_shift_delete_image_with_its_typed_name_and_everything_follows(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, ["v1", "v2"], variants=2)
    seed_image(registry, "acme/web/backend", ["v1"])
    window = launch(registry)
    tree = window.navigator.tree
    gui.open_tree_path(qtbot, tree, ["acme", "PLAT", "web"])
    paths = (["acme"], ["acme", "PLAT"], ["acme", "PLAT", "web"])
    assert [gui.tree_index(tree, p).siblingAtColumn(1).data() for p in paths] == ["2", "2", "2"]
    open_image(qtbot, window)
    indicator = window.findChild(QToolButton, "pendingGc")
    assert indicator is not None
    qtbot.waitUntil(lambda: indicator.text() == pending_gc_text(registry), timeout=WAIT_MS)

    # As a person does: press it once the action is there (not greyed while checking).
    qtbot.waitUntil(lambda: window.acts.delete_image.isEnabled(), timeout=WAIT_MS)
    gui.key(qtbot, window, Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    text = gui.shown_text(dialog)
    assert "Delete image acme/web/frontend?" in text
    assert "all 2 of its tags" in text
    delete = gui.dialog_button(dialog, "Delete image")
    assert not delete.isEnabled()
    assert dialog.typed is not None
    gui.type_text(qtbot, dialog.typed, "frontent")
    assert not delete.isEnabled()
    gui.key(qtbot, dialog, Qt.Key.Key_Return)  # Enter without the name deletes nothing
    assert dialog.isVisible()
    gui.key(qtbot, dialog, Qt.Key.Key_Backspace)
    gui.type_text(qtbot, dialog.typed, "d")
    assert delete.isEnabled()
    gui.click_button(qtbot, delete)
    gui.gone(qtbot, dialog)

    qtbot.waitUntil(lambda: gui.texts(window.browse.images.view) == ["backend"], timeout=WAIT_MS)
    assert image_rows(registry).keys() == {"backend"}
    assert server_tags(registry, NAME) == set()
    # The tree's counts, and the toolbar's pending GC, follow.
    qtbot.waitUntil(
        lambda: (
            [gui.tree_index(tree, p).siblingAtColumn(1).data() for p in paths] == ["1", "1", "1"]
        ),
        timeout=WAIT_MS,
    )
    # The image's own layers await GC now.
    assert pending_gc_text(registry) != "GC: 0 B pending"
    qtbot.waitUntil(lambda: indicator.text() == pending_gc_text(registry), timeout=WAIT_MS)


def test_deletes_by_someone_else_reach_the_window_through_the_event_stream(
    registry: RegistryServer, launch: Launch, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, ["a", "b", "c", "d"], variants=3)  # a and d share a digest
    seed_image(registry, "acme/web/backend", ["v1"])
    window = launch(registry)
    tree = window.navigator.tree
    gui.open_tree_path(qtbot, tree, ["acme", "PLAT", "web"])
    open_image(qtbot, window)
    images, tags = window.browse.images.view, window.browse.tags.view
    qtbot.waitUntil(lambda: sorted(gui.texts(tags)) == ["a", "b", "c", "d"], timeout=WAIT_MS)
    other_tags = tags_model.OTHER_TAGS
    assert gui.row_texts(tags, gui.find_row(tags, "a").row())[other_tags] == "d"
    qtbot.waitUntil(lambda: window.storage.stream_opens > 0, timeout=WAIT_MS)
    indicator = window.findChild(QToolButton, "pendingGc")
    assert indicator is not None

    def row_of(name: str) -> list[str]:
        return gui.row_texts(images, gui.find_row(images, name).row())

    def shown_like_server(name: str) -> bool:
        server = image_rows(registry)[name]
        shown = row_of(name)
        return shown[1:4] == [
            str(server["tag_count"]),
            format_bytes(server["size"]),
            format_bytes(server["exclusive_size"]),
        ]

    assert shown_like_server("frontend")
    frontend = image_rows(registry)["frontend"]["id"]
    with api(registry, "admin") as c:
        for tag in ("b", "d"):
            r = c.delete(f"/images/{frontend}/tags/{tag}", headers=as_listed(c, frontend))
            assert r.status_code == 204, r.text
    qtbot.waitUntil(lambda: sorted(gui.texts(tags)) == ["a", "c"], timeout=WAIT_MS)
    # a's digest keeps no other tag now.
    assert gui.row_texts(tags, gui.find_row(tags, "a").row())[other_tags] == ""
    qtbot.waitUntil(lambda: row_of("frontend")[1] == "2", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: shown_like_server("frontend"), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: indicator.text() == pending_gc_text(registry), timeout=WAIT_MS)

    backend = image_rows(registry)["backend"]["id"]
    with api(registry, "admin") as c:
        r = c.delete(f"/images/{backend}", headers=as_listed(c, backend))
        assert r.status_code == 204, r.text
    qtbot.waitUntil(lambda: gui.texts(images) == ["frontend"], timeout=WAIT_MS)
    paths = (["acme"], ["acme", "PLAT"], ["acme", "PLAT", "web"])
    qtbot.waitUntil(
        lambda: (
            [gui.tree_index(tree, p).siblingAtColumn(1).data() for p in paths] == ["1", "1", "1"]
        ),
        timeout=WAIT_MS,
    )
    qtbot.waitUntil(lambda: indicator.text() == pending_gc_text(registry), timeout=WAIT_MS)
    # The image still shown is still the one whose tags are listed.
    assert window.browse.tags.title.text() == "Tags of acme/web/frontend"
    assert sorted(gui.texts(tags)) == ["a", "c"]


def test_a_bulk_delete_cut_off_by_the_server_going_away_and_finished_after_f5(
    registry_factory: Any, launch: Launch, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: RegistryServer = registry_factory()
    tags = [f"t{i:03d}" for i in range(60)]
    seed_image(server, NAME, tags, variants=4)
    window = launch(server)
    open_image(qtbot, window)
    view = window.browse.tags.view
    qtbot.waitUntil(lambda: gui.model_rows(view) == 60, timeout=WAIT_MS)
    # Instrumentation, not a user step: chunks of 20, and the registry dies after
    # answering the first.
    assert window.backend is not None
    monkeypatch.setattr(window.backend, "bulk_chunk", 20)
    real_delete = window.backend.delete_tags
    calls = 0

    async def delete_then_crash(image: Any, names: Any, *rest: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        result = await real_delete(image, names, *rest, **kw)
        if calls == 1:
            server.kill()
        return result

    monkeypatch.setattr(window.backend, "delete_tags", delete_then_crash)
    gui.click_row(qtbot, view, "t000")
    gui.key(qtbot, window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert len(gui.selected_texts(view)) == 60
    gui.key(qtbot, window, Qt.Key.Key_Delete)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    gui.click_dialog_button(qtbot, dialog, "Delete")
    gui.gone(qtbot, dialog)
    bulk = window.browse.bulk
    qtbot.waitUntil(lambda: bulk.label.text().startswith("Deleted 20 of 60 tags"), timeout=WAIT_MS)
    assert "40 not deleted" in bulk.label.text()
    assert "Stopped:" in bulk.label.text()
    assert bulk.failures.count() == 40
    assert "refused" in bulk.failures.item(0).text()
    assert window.error_bar.isVisible()
    assert gui.model_rows(view) == 40  # only what was deleted left the table

    # The registry comes back on the same port; F5, then delete the rest.
    port = server.url.rsplit(":", 1)[1]
    server.extra_args = ["--port", port]
    server.start()
    monkeypatch.setattr(window.backend, "delete_tags", real_delete)
    gui.key(qtbot, window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: not window.error_bar.isVisible(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=WAIT_MS)
    assert gui.model_rows(view) == 40
    gui.click_row(qtbot, view, 0)
    gui.key(qtbot, window, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    gui.key(qtbot, window, Qt.Key.Key_Delete)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    assert "Delete 40 tags of acme/web/frontend?" in gui.shown_text(dialog)
    gui.click_dialog_button(qtbot, dialog, "Delete")
    gui.gone(qtbot, dialog)
    qtbot.waitUntil(lambda: gui.model_rows(view) == 0, timeout=WAIT_MS)
    assert server_tags(server, NAME) == set()
