"""Deleting from the window against a real registry: drag-select + Delete, cancel,
image delete with its typed name, a bulk delete cut off by the server going away,
and the server's 403 when the disabled action is bypassed."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from pytestqt.qtbot import QtBot

from app.client.berth_api import DeleteImpact
from app.ui import confirm_delete
from app.ui.confirm_delete import ConfirmDeleteDialog
from app.ui.deletion import DeletePlan
from app.ui.main_window import MainWindow
from tests.support.registry import RegistryServer
from tests.ui.conftest import WindowFactory, wait_idle
from tests.ui.seed import seed_image, server_tags

NAME = "acme/web/frontend"


def open_image(window: MainWindow, qtbot: QtBot, path: tuple[str, ...] = ("acme",)) -> None:
    if window.current_path() != path:
        assert window.select_path(path)
    qtbot.waitUntil(lambda: window.browse.images_model.rowCount() > 0)
    first = window.browse.images_model.rows[0]
    window.browse.images.select_keys([first.id], current=first.id)
    wait_idle(qtbot, window)


class Confirm:
    """A stand-in for the confirmation seam that records what it was shown."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.calls: list[tuple[DeletePlan, DeleteImpact | None]] = []

    async def __call__(self, parent: Any, plan: DeletePlan, impact: Any, error: Any = None) -> bool:
        self.calls.append((plan, impact))
        return self.answer


def drag_select(qtbot: QtBot, window: MainWindow, first: int, last: int) -> None:
    view = window.browse.tags.view
    viewport = view.viewport()
    start = view.visualRect(view.model().index(first, 0)).center()
    end = view.visualRect(view.model().index(last, 0)).center()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    # Move in steps, as a hand would, with the button held.
    for y in range(start.y(), end.y() + 1, 4):
        qtbot.mouseMove(viewport, QPoint(start.x(), y))
    qtbot.mouseMove(viewport, end)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)


def test_drag_select_delete_and_cancel(
    registry: RegistryServer,
    make_window: WindowFactory,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tags = [f"v{i:02d}" for i in range(12)]
    seed_image(registry, NAME, tags, variants=3)
    window = make_window(registry)
    open_image(window, qtbot)
    view = window.browse.tags.view
    view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    assert window.browse.tags_model.rowCount() == 12

    drag_select(qtbot, window, 2, 5)
    assert [t.name for t in window.browse.tags.selected()] == ["v02", "v03", "v04", "v05"]
    assert window.acts.delete_tags.isEnabled()

    # Cancel: nothing goes.
    no = Confirm(False)
    monkeypatch.setattr(confirm_delete, "confirm_delete", no)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    wait_idle(qtbot, window)
    assert len(no.calls) == 1
    plan, impact = no.calls[0]
    assert plan.names == ["v02", "v03", "v04", "v05"]
    # Other tags on the same digests stay and are named (3 variants: v02 shares with v05...).
    assert any("v08" in names for names in plan.staying.values())
    assert impact is not None
    assert impact.freed == 0  # the other tags keep every manifest referenced
    assert server_tags(registry, NAME) == set(tags)
    assert window.browse.tags_model.rowCount() == 12

    # Accept: those four are gone on the server and from the table.
    yes = Confirm(True)
    monkeypatch.setattr(confirm_delete, "confirm_delete", yes)
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    wait_idle(qtbot, window)
    assert len(yes.calls) == 1
    assert server_tags(registry, NAME) == set(tags) - {"v02", "v03", "v04", "v05"}
    assert {t.name for t in window.browse.tags_model.rows} == server_tags(registry, NAME)
    assert window.browse.bulk.outcome is not None
    assert window.browse.bulk.outcome.deleted == ["v02", "v03", "v04", "v05"]
    # The image row was updated in place.
    qtbot.waitUntil(lambda: window.browse.images_model.rows[0].tag_count == 8)


def test_confirmation_dialog_contents_and_typed_image_name(
    registry: RegistryServer,
    make_window: WindowFactory,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_image(registry, NAME, ["a", "b"])
    seed_image(registry, "acme/web/other", ["x"])
    window = make_window(registry)
    assert window.select_path(("acme",))
    qtbot.waitUntil(lambda: window.browse.images_model.rowCount() == 2)
    image = next(i for i in window.browse.images_model.rows if i.name == "frontend")
    window.browse.images.select_keys([image.id], current=image.id)
    wait_idle(qtbot, window)
    assert window.acts.delete_image.isEnabled()

    seen: list[ConfirmDeleteDialog] = []

    async def typed(parent: Any, plan: DeletePlan, impact: Any, error: Any = None) -> bool:
        dialog = ConfirmDeleteDialog(plan, impact, error, parent)
        seen.append(dialog)
        assert dialog.typed is not None
        assert not dialog.delete_button.isEnabled()
        dialog.typed.setText("frontend-wrong")
        assert not dialog.delete_button.isEnabled()
        dialog.accept()  # Enter without the name: nothing happens
        assert dialog.result() != dialog.DialogCode.Accepted
        dialog.typed.setText("frontend")
        assert dialog.delete_button.isEnabled()
        assert "permanent" in "".join(w.text() for w in dialog.findChildren(type(dialog.what)))
        assert "freed" in dialog.storage.text()
        dialog.delete_button.click()
        return dialog.result() == dialog.DialogCode.Accepted

    monkeypatch.setattr(confirm_delete, "confirm_delete", typed)
    window.acts.delete_image.trigger()
    wait_idle(qtbot, window)
    assert seen
    assert server_tags(registry, NAME) == set()
    assert [i.name for i in window.browse.images_model.rows] == ["other"]
    assert window.image is None or window.image.id != image.id
    assert server_tags(registry, "acme/web/other") == {"x"}


def test_bulk_delete_interrupted_by_the_server_going_away(
    tmp_path: Any,
    registry_factory: Any,
    make_window: WindowFactory,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server: RegistryServer = registry_factory()
    tags = [f"t{i:03d}" for i in range(60)]
    seed_image(server, NAME, tags, variants=4)
    window = make_window(server)
    open_image(window, qtbot)
    window.browse.tags.view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    assert window.backend is not None
    monkeypatch.setattr(window.backend, "bulk_chunk", 20)
    real_delete = window.backend.delete_tags
    calls = 0

    async def delete_then_crash(image: Any, names: Any, *rest: Any) -> Any:
        nonlocal calls
        calls += 1
        result = await real_delete(image, names, *rest)
        if calls == 1:
            server.kill()  # the registry dies after answering the first chunk
        return result

    monkeypatch.setattr(window.backend, "delete_tags", delete_then_crash)
    monkeypatch.setattr(confirm_delete, "confirm_delete", Confirm(True))
    window.browse.tags.view.selectAll()
    window.acts.delete_tags.trigger()
    wait_idle(qtbot, window)

    outcome = window.browse.bulk.outcome
    assert outcome is not None
    assert len(outcome.deleted) == 20
    assert len(outcome.failed) == 40
    assert outcome.stopped_by is not None
    assert window.browse.bulk.failures.count() == 40
    assert "refused" in window.browse.bulk.failures.item(0).text()
    assert window.error_bar.isVisible()
    assert window.browse.tags_model.rowCount() == 40  # only what was deleted left the table
    assert not window.ops.busy

    # Recovery: the registry comes back on the same port; F5 and delete the rest.
    port = server.url.rsplit(":", 1)[1]
    server.extra_args = ["--port", port]
    server.start()
    monkeypatch.setattr(window.backend, "delete_tags", real_delete)
    window.refresh()
    wait_idle(qtbot, window)
    assert not window.error_bar.isVisible()
    assert window.browse.tags_model.rowCount() == 40
    window.browse.tags.view.setFocus()
    window.browse.tags.view.selectAll()
    window.acts.delete_tags.trigger()
    wait_idle(qtbot, window)
    assert server_tags(server, NAME) == set()
    assert window.browse.tags_model.rowCount() == 0


def test_server_403_when_the_ui_is_bypassed(
    registry: RegistryServer,
    make_window: WindowFactory,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_image(registry, NAME, ["keep-1", "keep-2"])
    window = make_window(registry, user="reader")
    open_image(window, qtbot)
    window.browse.tags.view.selectAll()
    assert not window.acts.delete_tags.isEnabled()
    monkeypatch.setattr(confirm_delete, "confirm_delete", Confirm(True))
    # Straight to the delete, as if the action had been enabled by mistake.
    window.delete_tags(window.browse.tags.selected())
    wait_idle(qtbot, window)
    assert window.error_bar.isVisible()
    assert "write" in window.error_bar.text
    assert "acme/web" in window.error_bar.text
    assert server_tags(registry, NAME) == {"keep-1", "keep-2"}
    assert window.browse.tags_model.rowCount() == 2
    # Image delete too: the server refuses, the row stays.
    assert window.image is not None
    window.delete_image(window.image)
    wait_idle(qtbot, window)
    assert "admin" in window.error_bar.text
    assert window.browse.images_model.rowCount() == 1
