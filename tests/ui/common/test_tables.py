"""The tables against a real registry: paging through more than 1,000 tags, sorting
on numbers, filtering as you type (locally and on the server), selection kept
across a refresh, a filter and a sort, pages and deletes while filtered, rows sorted
here where the registry cannot sort (OCI), and every model checked by Qt's model
tester."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from PySide6.QtCore import QAbstractItemModel, Qt
from PySide6.QtTest import QAbstractItemModelTester
from pytestqt.exceptions import TimeoutError as WaitTimeout
from pytestqt.qtbot import QtBot

from app.client.profiles import Profile
from app.ui.backends.oci import OciBackend
from app.ui.browse import images_model, tags_model
from app.ui.browse.tags_model import TagsModel
from app.ui.common import confirm_delete
from app.ui.common.table_model import PAGE_SIZE, Column, PagedTableModel, SortRole
from app.ui.common.table_panel import TablePanel
from app.ui.main_window import MainWindow
from app.ui.oci.controller import TAGS_FILL
from tests.support import oci
from tests.support.registry import PASSWORD, RegistryServer
from tests.ui.conftest import WindowFactory, wait_idle
from tests.ui.flows.test_delete_flow import NAME
from tests.ui.seed import seed_image, server_tags


def open_image(window: MainWindow, qtbot: QtBot, path: tuple[str, ...] = ("acme",)) -> None:
    """Straight to the first image (these tests are about the tables' internals; the
    flows by mouse and keyboard are in tests/ui/flows)."""
    if window.navigator.current_path() != path:
        assert window.navigator.select_path(path)
    qtbot.waitUntil(lambda: window.browse.images_model.rowCount() > 0)
    first = window.browse.images_model.rows[0]
    window.browse.images.select_keys([first.id], current=first.id)
    wait_idle(qtbot, window)


class Confirm:
    """A stand-in for the confirmation seam that records what it was shown."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, Any]] = []

    async def __call__(self, parent: Any, plan: Any, impact: Any, error: Any = None) -> bool:
        self.calls.append((plan, impact))
        return self.answer


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
    _window, panel, model = _open_tags(registry, make_window, qtbot, tags, variants=5, page_size=50)
    assert model.rowCount() == 50
    panel.filter.setText("r29")  # r290..r299 are not loaded yet
    assert panel.proxy.rowCount() == 0
    # The server's answer replaces the rows (the view may have paged on meanwhile,
    # to fill itself while the filter hid every loaded row).
    wanted = [f"r29{i}" for i in range(10)]
    qtbot.waitUntil(lambda: sorted(t.name for t in model.rows) == wanted, timeout=10_000)
    assert panel.proxy.rowCount() == 10
    assert model.state.query == "r29"


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
    assert window.navigator.select_path(("acme",))
    qtbot.waitUntil(lambda: window.browse.images_model.rowCount() == 3)
    wait_idle(qtbot, window)
    panel = window.browse.images
    panel.view.sortByColumn(images_model.SIZE, Qt.SortOrder.AscendingOrder)
    names = [panel.proxy.index(r, images_model.NAME).data() for r in range(3)]
    assert names == ["small", "medium", "big"]
    panel.view.sortByColumn(images_model.TAGS, Qt.SortOrder.DescendingOrder)
    assert panel.proxy.index(0, images_model.NAME).data() == "big"
    qtmodeltester.check(panel.proxy)  # type: ignore[attr-defined]
    qtmodeltester.check(window.navigator.nav_model)  # type: ignore[attr-defined]
    qtmodeltester.check(window.navigator.nav_proxy)  # type: ignore[attr-defined]
    panel.select_keys([window.browse.images_model.rows[0].id])
    open_image(window, qtbot, ("acme",))
    window.browse.tags.select_keys(["v1"], current="v1")
    wait_idle(qtbot, window)
    qtmodeltester.check(window.browse.details.layers_model)  # type: ignore[attr-defined]
    qtmodeltester.check(window.browse.tags.proxy)  # type: ignore[attr-defined]


# --- filtering and sorting in the model (the proxy passes its rows through) -----------


def _testers(*models: QAbstractItemModel) -> None:
    """Qt's model tester on each model for as long as it lives: every change is
    checked (a warning fails the test), and each one fetches more, as a view does."""
    mode = QAbstractItemModelTester.FailureReportingMode.Warning
    for model in models:
        QAbstractItemModelTester(model, mode, model)


def _shown(panel: TablePanel, column: int = 0) -> list[str]:
    return [panel.proxy.index(r, column).data() for r in range(panel.proxy.rowCount())]


def _open_tags(
    registry: RegistryServer,
    make_window: WindowFactory,
    qtbot: QtBot,
    tags: list[str],
    *,
    variants: int,
    page_size: int = PAGE_SIZE,
) -> tuple[MainWindow, TablePanel, TagsModel]:
    """A window showing the tags of NAME, seeded with ``tags``."""
    seed_image(registry, NAME, tags, variants=variants)
    window = make_window(registry)
    window.browse.tags_model.page_size = page_size
    open_image(window, qtbot)
    return window, window.browse.tags, window.browse.tags_model


def test_filter_and_sort_keep_the_selection_of_rows_still_shown(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    tags = [f"t{i:02d}" for i in range(60)]
    _, panel, model = _open_tags(registry, make_window, qtbot, tags, variants=3)
    _testers(panel.proxy, model)
    panel.view.sortByColumn(tags_model.TAG, Qt.SortOrder.AscendingOrder)
    panel.select_keys(["t05", "t15", "t17", "t31"], current="t15")

    # Typing narrows the rows shown; the selected ones still shown stay selected.
    qtbot.keyClicks(panel.filter, "t1")
    assert _shown(panel) == [f"t1{i}" for i in range(10)]
    assert model.rowCount() == panel.proxy.rowCount() == 10
    assert len(model.rows) == 60  # every loaded row is still here, only hidden
    assert sorted(panel.selected_keys()) == ["t15", "t17"]
    assert panel.current() is not None
    assert panel.current().name == "t15"
    assert panel.count.text().startswith("10 shown · 60 tags")
    assert model.row_of("t05") is None
    assert model.row_of("t17") == 7

    # A sort while filtered keeps the filter and the selection.
    panel.view.sortByColumn(tags_model.TAG, Qt.SortOrder.DescendingOrder)
    assert _shown(panel) == [f"t1{i}" for i in reversed(range(10))]
    assert sorted(panel.selected_keys()) == ["t15", "t17"]
    assert panel.current().name == "t15"
    qtbot.keyClicks(panel.filter, "7")  # "t17": narrower, only the rows shown are looked at
    assert _shown(panel) == ["t17"]
    assert panel.selected_keys() == ["t17"]

    # Clearing brings every row back in the current order; hidden rows were deselected
    # when they left the view (as a QSortFilterProxyModel filter does).
    panel.filter.clear()
    assert _shown(panel) == sorted(tags, reverse=True)
    assert panel.selected_keys() == ["t17"]
    assert "shown" not in panel.count.text()
    panel.select_keys(["t01", "t40"], current="t40")
    panel.proxy.set_filter_text("T4")  # any case
    assert _shown(panel) == [f"t4{i}" for i in reversed(range(10))]
    assert panel.selected_keys() == ["t40"]
    panel.view.sortByColumn(tags_model.TAG, Qt.SortOrder.AscendingOrder)
    assert panel.view.selectionModel().currentIndex().data() == "t40"


def test_pages_arriving_while_filtered_show_only_matching_rows(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    tags = [f"r{i:03d}" for i in range(300)]
    window, panel, model = _open_tags(registry, make_window, qtbot, tags, variants=5, page_size=40)
    _testers(panel.proxy, model)
    panel.proxy.set_filter_text("5")  # locally only: no server query from here
    assert all("5" in name for name in _shown(panel))
    panel.view.sortByColumn(tags_model.TAG, Qt.SortOrder.DescendingOrder)  # the server sorts
    while model.canFetchMore() or model.loading:
        model.fetchMore()
        wait_idle(qtbot, window)
    matching = sorted((t for t in tags if "5" in t), reverse=True)
    assert len(model.rows) == 300
    assert _shown(panel) == matching
    panel.select_keys(["r255", "r150"], current="r150")
    panel.proxy.set_filter_text("")
    assert _shown(panel) == sorted(tags, reverse=True)
    assert sorted(panel.selected_keys()) == ["r150", "r255"]


def test_deleting_from_a_filtered_table(
    registry: RegistryServer,
    make_window: WindowFactory,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tags = [f"d{i:02d}" for i in range(40)]
    window, panel, model = _open_tags(registry, make_window, qtbot, tags, variants=4)
    _testers(panel.proxy, model)
    panel.view.sortByColumn(tags_model.TAG, Qt.SortOrder.AscendingOrder)
    qtbot.keyClicks(panel.filter, "d1")
    panel.view.setFocus()
    qtbot.keyClick(panel.view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert panel.selected_keys() == [f"d1{i}" for i in range(10)]
    monkeypatch.setattr(confirm_delete, "confirm_delete", Confirm(True))
    qtbot.keyClick(panel.view, Qt.Key.Key_Delete)
    wait_idle(qtbot, window)
    remaining = set(tags) - {f"d1{i}" for i in range(10)}
    assert server_tags(registry, NAME) == remaining
    assert panel.proxy.rowCount() == 0
    assert {t.name for t in model.rows} == remaining
    panel.filter.clear()
    assert _shown(panel) == sorted(remaining)

    # Rows taken out while filtered, shown and hidden alike.
    panel.proxy.set_filter_text("d2")
    assert model.remove_keys(["d21", "d05", "d22", "d39", "nope"]) == 4
    assert _shown(panel) == ["d20", *(f"d2{i}" for i in range(3, 10))]
    panel.proxy.set_filter_text("")
    assert len(_shown(panel)) == 26
    assert "d05" not in _shown(panel)


@dataclass(frozen=True)
class Item:
    name: str
    size: int


ITEM_COLUMNS: list[Column[Item]] = [
    Column("Name", lambda i: i.name, lambda i: i.name),
    Column("Size", lambda i: str(i.size), lambda i: i.size, numeric=True),
]


def test_a_changed_row_is_filtered_and_sorted_again(qtbot: QtBot) -> None:
    model: PagedTableModel[Item] = PagedTableModel(
        ITEM_COLUMNS, key=lambda i: i.name, search_text=lambda i: f"size {i.size}"
    )
    panel = TablePanel(model, name="items", title="Items", noun="items", placeholder="", multi=True)
    qtbot.addWidget(panel)
    panel.show()
    _testers(panel.proxy, model)
    model.set_rows(Item(f"i{n}", n * 10) for n in range(10))
    panel.view.sortByColumn(1, Qt.SortOrder.DescendingOrder)
    assert _shown(panel) == [f"i{n}" for n in reversed(range(10))]
    panel.proxy.set_filter_text("size 5")
    assert _shown(panel) == ["i5"]
    panel.select_keys(["i5"], current="i5")

    panel.proxy.set_filter_text("5")
    model.replace_row(Item("i3", 15))  # now matches: shown, where it belongs
    assert _shown(panel) == ["i5", "i3"]
    model.replace_row(Item("i5", 99))  # no longer matches: hidden
    assert _shown(panel) == ["i3"]
    panel.proxy.set_filter_text("")
    assert model.resort_pending  # two sort values changed: one sort, soon
    qtbot.waitUntil(lambda: not model.resort_pending)
    assert _shown(panel) == ["i5", "i9", "i8", "i7", "i6", "i4", "i2", "i3", "i1", "i0"]
    assert panel.selected_keys() == []  # i5 left the view while filtered
    panel.select_keys(["i8"], current="i8")
    model.replace_row(Item("i8", 1))
    qtbot.waitUntil(lambda: not model.resort_pending)
    assert _shown(panel)[-2:] == ["i8", "i0"]
    assert panel.selected_keys() == ["i8"]  # the selection moved with it
    model.replace_row(Item("i8", 1))  # same sort value: nothing to sort again
    assert not model.resort_pending


OCI_SIZES = [3_000, 40_000, 9_000, 20_000]


def test_oci_tags_sort_here_on_columns_the_registry_cannot_sort(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    images = [oci.image([oci.random_layer(s, f"sort-{s}")]) for s in OCI_SIZES]
    tags = [f"s{i:03d}" for i in range(120)]
    with registry.client("root") as http:
        for i, tag in enumerate(tags):
            oci.push(http, NAME, images[i % len(images)], tag)
    window = make_window()
    window.open_profile(Profile("oci", registry.url, "wsadmin", kind="oci"), PASSWORD)
    wait_idle(qtbot, window)
    backend = window.backend
    assert isinstance(backend, OciBackend), window.error_bar.text
    assert backend.capabilities.server_sort == ("name",)
    model, panel = window.browse.tags_model, window.browse.tags
    model.page_size = 10
    assert window.navigator.select_path((registry.host, "acme"))
    qtbot.waitUntil(lambda: window.browse.images_model.rowCount() == 1, timeout=20_000)
    image = window.browse.images_model.rows[0]
    window.browse.images.select_keys([image.id], current=image.id)
    # At least the first page: the view asks for more while its rows do not fill it.
    qtbot.waitUntil(lambda: model.rowCount() >= 10 and not model.loading, timeout=20_000)
    wait_idle(qtbot, window)

    # Name: the registry's order, a new first page.
    panel.view.sortByColumn(tags_model.TAG, Qt.SortOrder.DescendingOrder)
    wait_idle(qtbot, window)
    assert _shown(panel)[:10] == [f"s{i}" for i in range(119, 109, -1)]
    assert len(model.rows) < 120  # the view fetched what it shows, not more
    # Size: not the registry's; sorted here as pages and details arrive.
    panel.view.sortByColumn(tags_model.SIZE, Qt.SortOrder.DescendingOrder)
    while model.canFetchMore() or model.loading:
        model.fetchMore()
        wait_idle(qtbot, window)
    try:
        qtbot.waitUntil(
            lambda: all(t.size > 0 for t in model.rows) and not model.resort_pending, timeout=20_000
        )
    except WaitTimeout as exc:
        unsized = [t.name for t in model.rows if t.size <= 0]
        raise AssertionError(
            f"{len(unsized)} of {len(model.rows)} rows without a size ({unsized[:10]}), "
            f"resort pending: {model.resort_pending}, "
            f"fill running: {window.ops.running(TAGS_FILL)}, "
            f"error bar: {window.error_bar.text!r}"
        ) from exc
    wait_idle(qtbot, window)
    assert sorted(t.name for t in model.rows) == tags
    sizes = [panel.proxy.index(r, tags_model.SIZE).data(SortRole) for r in range(120)]
    assert sizes == sorted(sizes, reverse=True)
    biggest = images[OCI_SIZES.index(max(OCI_SIZES))].compressed_size
    assert sizes[0] == biggest
    assert len(set(sizes)) == len(OCI_SIZES)
    _testers(panel.proxy, model)
    panel.view.sortByColumn(tags_model.SIZE, Qt.SortOrder.AscendingOrder)
    assert panel.proxy.index(119, tags_model.SIZE).data(SortRole) == biggest
