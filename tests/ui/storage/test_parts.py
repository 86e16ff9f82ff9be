"""The storage view's parts on their own: byte axes at round IEC steps, how GC runs
and review times read, the charts' series from given figures, and the shared-layers
tree model (paging, sorting on the server or locally, reloading in place, a load
cancelled from outside) checked by qtmodeltester."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from app.client.berth_api import (
    DeleteImpact,
    GcRun,
    Page,
    RepositoryStorage,
    SharedLayer,
    Storage,
    StorageHistory,
    StorageSample,
)
from app.ui.common.confirm_delete import storage_text
from app.ui.common.operations import Operations
from app.ui.storage.charts import (
    CompositionChart,
    HistoryChart,
    RepositoriesChart,
    byte_ticks,
    tick_label,
    trigger_text,
)
from app.ui.storage.gc_panel import seconds_text, until_text
from app.ui.storage.layers import SharedLayersPanel
from app.ui.storage.shared_layers_model import DIGEST, IMAGES, SIZE, SharedLayersModel

KIB, MIB, GIB = 1024, 1024**2, 1024**3


def test_byte_ticks_are_round_iec_steps_covering_the_maximum() -> None:
    assert byte_ticks(0) == [0, KIB]
    assert byte_ticks(700) == [0, 200, 400, 600, 800]
    assert byte_ticks(1500) == [0, KIB, 2 * KIB]
    assert byte_ticks(39.9 * MIB) == [0, 10 * MIB, 20 * MIB, 30 * MIB, 40 * MIB]
    assert byte_ticks(40 * MIB) == [0, 10 * MIB, 20 * MIB, 30 * MIB, 40 * MIB]
    assert byte_ticks(3 * GIB, target=2) == [0, 2 * GIB, 4 * GIB]
    for maximum in (1, 999, 123_456, 7 * GIB, 5 * 1024**5):
        ticks = byte_ticks(maximum)
        assert ticks[-1] >= maximum
        assert len(ticks) <= 6
    assert [tick_label(t) for t in byte_ticks(39.9 * MIB)] == [
        "0 B",
        "10 MiB",
        "20 MiB",
        "30 MiB",
        "40 MiB",
    ]
    assert tick_label(int(1.5 * GIB)) == "1.5 GiB"


def test_triggers_read_as_what_happened_routine_reviews_last() -> None:
    assert trigger_text(["blob_upload", "tag_delete", "manual"]) == (
        "run now, tag deleted, blob uploaded"
    )
    assert trigger_text(["blob_upload", "tag_delete", "manual"], brief=True) == (
        "run now, tag deleted"
    )
    assert trigger_text(["blob_upload"], brief=True) == "blob uploaded"
    assert trigger_text(["image_delete"]) == "image deleted"
    assert trigger_text(["something_new"]) == "something new"
    assert trigger_text([]) == "—"


def test_review_times_and_settings_read_plainly() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert until_text(None, now) == "nothing queued"
    assert until_text(now - timedelta(seconds=5), now) == "due now"
    assert until_text(now + timedelta(seconds=42), now) == "in 42 s"
    assert until_text(now + timedelta(minutes=4, seconds=50), now) == "in 5 min"
    assert until_text(now + timedelta(hours=5), now) == "in 5.0 h"
    assert seconds_text(1) == "1 s"
    assert seconds_text(300) == "5 min"
    assert seconds_text(3600) == "60 min"
    assert seconds_text(86400) == "24 h"


def storage(**kw: Any) -> Storage:
    base = {
        "stored": 10 * MIB,
        "referenced": 8 * MIB,
        "shared": 3 * MIB,
        "pending": 2 * MIB,
        "logical": 14 * MIB,
        "saving": 6 * MIB,
        "blob_count": 12,
        "repositories": (),
    }
    return Storage(**{**base, **kw})


def test_the_donut_is_exclusive_shared_and_pending(qtbot: QtBot) -> None:
    chart = CompositionChart()
    qtbot.addWidget(chart)
    chart.show_storage(storage())
    assert [(p.label(), int(p.value())) for p in chart.series.slices()] == [
        ("Exclusive", 5 * MIB),
        ("Shared", 3 * MIB),
        ("Pending GC", 2 * MIB),
    ]
    assert chart.chart().title() == "Stored: 10.0 MiB"
    tip = chart.slice_tip(chart.pending)
    assert tip.startswith(f"Pending GC: 2.0 MiB ({2 * MIB:,} bytes, 20% of stored)")


def test_the_largest_repositories_are_drawn_largest_on_top(qtbot: QtBot) -> None:
    chart = RepositoriesChart()
    qtbot.addWidget(chart)
    repos = [
        RepositoryStorage(f"repo{i:02d}", "P", exclusive=i * MIB, shared=KIB, image_count=i)
        for i in range(1, 14)
    ]
    chart.show_repositories(repos, limit=10)
    shown = [r.slug for r in chart.shown]
    assert shown == [f"repo{i:02d}" for i in range(4, 14)]  # bottom to top
    assert [int(chart.exclusive.at(i)) for i in range(10)] == [i * MIB for i in range(4, 14)]
    assert [int(chart.shared.at(i)) for i in range(10)] == [KIB] * 10
    assert chart.names.categories() == shown
    assert chart.chart().title() == "Largest repositories (top 10 of 13)"
    clicked: list[RepositoryStorage] = []
    chart.repositoryClicked.connect(clicked.append)
    chart.exclusive.clicked.emit(9)
    assert [r.slug for r in clicked] == ["repo13"]
    chart.show_repositories([])
    assert chart.exclusive.count() == 0
    assert chart.chart().title() == "Largest repositories: none hold any bytes yet"


def test_history_stacks_pending_on_referenced_and_marks_runs(qtbot: QtBot) -> None:
    chart = HistoryChart()
    qtbot.addWidget(chart)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    samples = tuple(
        StorageSample(t0 + timedelta(hours=h), stored=(10 + h) * MIB, referenced=10 * MIB,
                      pending=h * MIB)
        for h in range(4)
    )  # fmt: skip
    run = GcRun(7, ("tag_delete",), t0 + timedelta(hours=2, minutes=30), 41, 1, 2, 2 * MIB)
    now = StorageSample(t0 + timedelta(hours=4), 11 * MIB, 10 * MIB, MIB)
    chart.show_history(StorageHistory(samples, (run,)), now)
    assert chart.stored.count() == chart.referenced.count() == 5
    assert [int(chart.stored.at(i).y()) for i in range(5)] == [
        10 * MIB, 11 * MIB, 12 * MIB, 13 * MIB, 11 * MIB,
    ]  # fmt: skip
    assert {int(chart.referenced.at(i).y()) for i in range(5)} == {10 * MIB}
    # The run sits on the stored edge as it was when it started (the 2 h sample).
    point, marked = chart.run_points[0]
    assert marked == run
    assert int(point.y()) == 12 * MIB
    assert chart.runs.count() == 1
    assert chart.values.ticks[-1] >= 13 * MIB
    assert chart.time.format() == "HH:mm"


def layer(n: int, images: int = 2) -> SharedLayer:
    refs = tuple((i, f"acme/r/img{i:02d}") for i in range(min(images, 3)))
    return SharedLayer(f"sha256:{n:064x}", size=1000 * n, image_count=images, images=refs)


class Server:
    """Shared layers as a paged, sortable list, like the API."""

    def __init__(self, layers: list[SharedLayer]) -> None:
        self.layers = layers
        self.calls: list[tuple[str | None, str | None, int]] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, cursor: str | None, sort: str | None, limit: int) -> Page[Any]:
        self.calls.append((cursor, sort, limit))
        if self.gate is not None:
            await self.gate.wait()
        key = (sort or "-size").lstrip("-")
        ordered = sorted(
            self.layers, key=lambda item: getattr(item, key), reverse=(sort or "-").startswith("-")
        )
        start = int(cursor or 0)
        items = ordered[start : start + limit]
        more = start + limit < len(ordered)
        return Page(items, str(start + limit) if more else None, len(ordered))


@pytest.fixture
def ops(qt_loop: asyncio.AbstractEventLoop) -> Iterator[Operations]:
    operations = Operations()
    yield operations
    operations.cancel_all()  # the loop fixture waits for them to stop


def wait_loaded(qtbot: QtBot, model: SharedLayersModel) -> None:
    qtbot.waitUntil(lambda: not model.loading, timeout=10_000)


def test_shared_layers_page_sort_and_expand(
    qtbot: QtBot, ops: Operations, qtmodeltester: Any
) -> None:
    server = Server([layer(n, images=2 + n % 5) for n in range(1, 26)])
    model = SharedLayersModel(ops.run)
    model.page_size = 10
    model.set_source(server)
    wait_loaded(qtbot, model)
    assert model.rowCount() == 10
    assert model.total == 25
    assert server.calls == [(None, "-size", 10)]
    assert [model.index(r, SIZE).data() for r in range(3)] == ["24.4 KiB", "23.4 KiB", "22.5 KiB"]
    assert not model.canFetchMore(QModelIndex())  # views never page by themselves
    while model.can_load_more:
        model.load_more()
        model.load_more()  # guarded: one page in flight
        wait_loaded(qtbot, model)
    assert model.rowCount() == 25
    assert len(server.calls) == 3
    qtmodeltester.check(model)

    # Expanding: the images the server listed, and how many more there are.
    row = model.row_of(layer(4).digest)
    assert row is not None
    parent = model.index(row, 0)
    assert model.index(row, IMAGES).data() == "6"
    names = [model.index(i, 0, parent).data() for i in range(model.rowCount(parent))]
    assert names == ["acme/r/img00", "acme/r/img01", "acme/r/img02", "… and 3 more not listed"]
    assert model.parent(model.index(1, 0, parent)) == parent

    # Image count: the server sorts (only part of a long list is here).
    model.sort(IMAGES, Qt.SortOrder.DescendingOrder)
    wait_loaded(qtbot, model)
    assert server.calls[-1][1] == "-image_count"
    counts = [model.layers[r].image_count for r in range(model.rowCount())]
    assert counts == sorted(counts, reverse=True)
    assert model.rowCount() == 25  # as many rows as were loaded came back
    # Digest: the server cannot, the loaded rows are ordered here.
    calls = len(server.calls)
    model.sort(DIGEST, Qt.SortOrder.AscendingOrder)
    assert len(server.calls) == calls
    digests = [model.index(r, DIGEST).data(Qt.ItemDataRole.ToolTipRole) for r in range(25)]
    assert digests == sorted(digests)
    qtmodeltester.check(model)


def test_shared_layers_reload_in_place_and_stop_when_cancelled(
    qtbot: QtBot, ops: Operations, qtmodeltester: Any
) -> None:
    server = Server([layer(n) for n in range(1, 6)])
    model = SharedLayersModel(ops.run)
    model.set_source(server)
    wait_loaded(qtbot, model)
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    # One more image reaches layer 5: same rows, a child more, no reset.
    server.layers[4] = layer(5, images=3)
    model.reload()
    wait_loaded(qtbot, model)
    assert resets == []
    parent = model.index(model.row_of(layer(5).digest) or 0, 0)
    assert model.rowCount(parent) == 3
    qtmodeltester.check(model)
    # A layer no longer shared: the list starts over.
    del server.layers[0]
    model.reload()
    wait_loaded(qtbot, model)
    assert resets == [1]
    assert model.rowCount() == 4

    # A page cancelled from outside (the window closing) does not ask again by itself.
    server.gate = asyncio.Event()
    model.set_source(server)
    ops.cancel("shared-layers-page")
    qtbot.waitUntil(lambda: not model.loading, timeout=10_000)
    assert not model.can_load_more


def test_delete_confirmations_say_what_gc_frees_and_what_sharing_keeps() -> None:
    text = storage_text(DeleteImpact(freed=3 * MIB, kept=KIB, freed_blobs=4, kept_blobs=1), None)
    assert text == (
        "Nothing is freed until garbage collection runs; then <b>3.0 MiB</b> will be freed "
        "(4 blobs no longer referenced) and <b>1.0 KiB</b> stays because other tags or "
        "images still use it (1 blob)."
    )
    alone = storage_text(DeleteImpact(freed=0, kept=0, freed_blobs=0, kept_blobs=0), None)
    assert alone.endswith("and nothing stays for other tags or images.")
    unknown = storage_text(None, "the registry is busy")
    assert unknown == (
        "Nothing is freed until garbage collection runs. How much this frees could not be "
        "computed (the registry is busy)."
    )


def test_the_tree_pages_as_it_is_scrolled_not_to_the_end_at_once(
    qtbot: QtBot, ops: Operations
) -> None:
    # QTreeView fetches from a lazily fetched root whenever it lays out its rows,
    # which would read all 10,000 layers of a large workspace in one go.
    server = Server([layer(n) for n in range(1, 1001)])
    panel = SharedLayersPanel(ops.run)
    qtbot.addWidget(panel)
    panel.resize(600, 300)
    panel.show()
    qtbot.waitExposed(panel)
    panel.model.page_size = 50
    panel.model.set_source(server)
    wait_loaded(qtbot, panel.model)
    qtbot.wait(300)  # layouts and repaints come and go
    wait_loaded(qtbot, panel.model)
    assert len(server.calls) == 1
    assert panel.count.text() == "50 of 1,000"
    panel.view.scrollToBottom()
    qtbot.waitUntil(lambda: len(server.calls) == 2, timeout=10_000)
    wait_loaded(qtbot, panel.model)
    qtbot.wait(300)
    assert len(server.calls) == 2
    assert panel.model.rowCount() == 100
