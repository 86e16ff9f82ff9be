"""The tables against a real registry: paging through more than 1,000 tags, sorting
on numbers, filtering as you type (locally and on the server), selection kept
across a refresh, and every model checked by qtmodeltester."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.ui import images_model, tags_model
from app.ui.table_model import SortRole
from tests.support.registry import RegistryServer
from tests.ui.conftest import WindowFactory, wait_idle
from tests.ui.seed import seed_image
from tests.ui.test_delete import NAME, open_image


def test_paging_through_1200_tags_sort_and_filter(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot, qtmodeltester: object
) -> None:
    tags = [f"build-{i:04d}" for i in range(1200)]
    seed_image(registry, NAME, tags, variants=40)
    window = make_window(registry)
    model = window.browse.tags_model
    model.page_size = 250
    open_image(window, qtbot)
    panel = window.browse.tags
    assert model.rowCount() == 250
    assert model.total == 1200
    assert "250 of 1,200 loaded" in panel.count.text()
    # Scrolling to the bottom asks for more, one page at a time.
    while model.canFetchMore():
        panel.view.scrollToBottom()
        model.fetchMore()
        model.fetchMore()  # a second call while loading is a no-op (guarded)
        wait_idle(qtbot, window)
    assert model.rowCount() == 1200
    assert {t.name for t in model.rows} == set(tags)
    qtmodeltester.check(panel.proxy)  # type: ignore[attr-defined]

    # Sizes sort as numbers, descending.
    panel.view.sortByColumn(tags_model.SIZE, Qt.SortOrder.DescendingOrder)
    sizes = [panel.proxy.index(r, tags_model.SIZE).data(SortRole) for r in range(50)]
    assert sizes == sorted(sizes, reverse=True)
    assert all(isinstance(s, int) for s in sizes)

    # Filter as you type: every row is here, so no server round trip.
    qtbot.keyClicks(panel.filter, "build-11")
    assert panel.proxy.rowCount() == 100
    assert "100 shown" in panel.count.text()
    panel.filter.clear()
    assert panel.proxy.rowCount() == 1200


def test_server_side_filter_when_not_all_rows_are_loaded(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    tags = [f"r{i:03d}" for i in range(300)]
    seed_image(registry, NAME, tags, variants=5)
    window = make_window(registry)
    model = window.browse.tags_model
    model.page_size = 50
    open_image(window, qtbot)
    panel = window.browse.tags
    assert model.rowCount() == 50
    panel.filter.setText("r29")  # r290..r299 are not loaded yet
    assert panel.proxy.rowCount() == 0
    qtbot.waitUntil(lambda: panel.proxy.rowCount() == 10, timeout=10_000)
    wait_idle(qtbot, window)
    assert sorted(t.name for t in model.rows) == [f"r29{i}" for i in range(10)]


def test_selection_survives_a_refresh(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, ["a", "b", "c", "d"], variants=2)
    window = make_window(registry)
    open_image(window, qtbot)
    panel = window.browse.tags
    panel.view.sortByColumn(tags_model.TAG, Qt.SortOrder.AscendingOrder)
    panel.select_keys(["b", "d"], current="d")
    seed_image(registry, NAME, ["aa"], variants=1)  # a new tag appears meanwhile
    window.acts.refresh.trigger()
    wait_idle(qtbot, window)
    assert sorted(t.name for t in window.browse.tags_model.rows) == ["a", "aa", "b", "c", "d"]
    assert sorted(panel.selected_keys()) == ["b", "d"]


def test_images_sort_on_numbers(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot, qtmodeltester: object
) -> None:
    seed_image(registry, "acme/web/small", ["v1"], layer_size=1000)
    seed_image(registry, "acme/web/big", ["v1", "v2"], layer_size=50_000)
    seed_image(registry, "acme/web/medium", ["v1"], layer_size=10_000)
    window = make_window(registry)
    assert window.select_path(("acme",))
    qtbot.waitUntil(lambda: window.browse.images_model.rowCount() == 3)
    wait_idle(qtbot, window)
    panel = window.browse.images
    panel.view.sortByColumn(images_model.SIZE, Qt.SortOrder.AscendingOrder)
    names = [panel.proxy.index(r, images_model.NAME).data() for r in range(3)]
    assert names == ["small", "medium", "big"]
    panel.view.sortByColumn(images_model.TAGS, Qt.SortOrder.DescendingOrder)
    assert panel.proxy.index(0, images_model.NAME).data() == "big"
    qtmodeltester.check(panel.proxy)  # type: ignore[attr-defined]
    qtmodeltester.check(window.nav_model)  # type: ignore[attr-defined]
    qtmodeltester.check(window.nav_proxy)  # type: ignore[attr-defined]
    panel.select_keys([window.browse.images_model.rows[0].id])
    open_image(window, qtbot, ("acme",))
    window.browse.tags.select_keys(["v1"], current="v1")
    wait_idle(qtbot, window)
    qtmodeltester.check(window.browse.details.layers_model)  # type: ignore[attr-defined]
    qtmodeltester.check(window.browse.tags.proxy)  # type: ignore[attr-defined]
