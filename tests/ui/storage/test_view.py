"""The storage view against a real registry process, reached and used with the
mouse: what it shows equals what the management API says, which equals sums this
test computes from the blobs it pushed (a blob several images share counted once);
it follows the event stream (a tag delete raises pending GC by the exclusive bytes,
a GC run brings it back to zero and shows in the history), never by polling; "Run
GC now" is for workspace admins; the charts carry the real figures; clicking a
repository's bar selects it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox, QToolTip
from pytestqt.qtbot import QtBot

from app.client.errors import PermissionDenied
from app.client.events import ServerEvent
from app.core.units import format_bytes
from app.ui.browse.navigator_model import Node
from app.ui.common.table_model import ObjectRole
from app.ui.main_window import MainWindow
from app.ui.storage import gc_panel
from app.ui.storage.charts import run_text
from app.ui.storage.shared_layers_model import DIGEST, IMAGES, SIZE
from app.ui.storage.view import StorageView
from tests.support import gui
from tests.support.api import Content, api, as_listed, push_content
from tests.support.registry import RegistryServer
from tests.ui.conftest import WindowFactory, wait_idle

Factory = Callable[..., RegistryServer]
WAIT_MS = 30_000
BACKEND = "acme/web/backend"


@dataclass
class Sums:
    """acme's storage, computed from what the test pushed."""

    sizes: dict[str, int]  # digest -> bytes
    users: dict[str, set[str]]  # digest -> images whose tags reach it
    tag_blobs: dict[tuple[str, str], set[str]]

    @classmethod
    def of(cls, content: Content, workspace: str = "acme") -> Sums:
        sizes: dict[str, int] = {}
        users: dict[str, set[str]] = defaultdict(set)
        tag_blobs: dict[tuple[str, str], set[str]] = {}
        for name, tags in content.tagged.items():
            if not name.startswith(f"{workspace}/"):
                continue
            for tag, image in tags.items():
                blobs = image.all_blobs()
                tag_blobs[(name, tag)] = {b.digest for b in blobs}
                for blob in blobs:
                    sizes[blob.digest] = blob.size
                    users[blob.digest].add(name)
        return cls(sizes, users, tag_blobs)

    @property
    def stored(self) -> int:
        return sum(self.sizes.values())

    @property
    def shared(self) -> int:
        return sum(self.sizes[d] for d, names in self.users.items() if len(names) > 1)

    @property
    def logical(self) -> int:
        return sum(self.sizes[d] * len(names) for d, names in self.users.items())

    def repository(self, slug: str) -> tuple[int, int]:
        """(exclusive, shared) bytes of one repository's images."""
        mine = {d: n for d, n in self.users.items() if any(i.split("/")[1] == slug for i in n)}
        exclusive = sum(self.sizes[d] for d, n in mine.items() if len(n) == 1)
        return exclusive, sum(self.sizes[d] for d, n in mine.items() if len(n) > 1)

    def exclusive_to(self, name: str, tag: str) -> int:
        """Bytes only this tag reaches: what deleting it leaves for GC."""
        others = set().union(*(b for key, b in self.tag_blobs.items() if key != (name, tag)))
        return sum(self.sizes[d] for d in self.tag_blobs[(name, tag)] - others)


def pushed(factory: Factory, review_delay: float) -> tuple[RegistryServer, Content]:
    """A registry holding the standard content. Pushed under the upload grace (it keeps
    a push's blobs while the manifest is still coming), then restarted without it so
    GC frees at once what nothing references any more. The uploads' reviews were
    queued for when their grace would end, and a review is never moved earlier:
    one run now settles them, so a delete's reviews fall due after the review delay."""
    server = factory(review_delay=review_delay)
    content = push_content(server)
    server.upload_grace = 0
    server.restart()
    with api(server, "root") as c:
        for workspace in ("acme", "globex"):
            assert c.post(f"/workspaces/{workspace}/gc/run").status_code == 200
            assert c.get(f"/workspaces/{workspace}/gc").json()["queued_blobs"] == 0
    return server, content


def open_storage(window: MainWindow, qtbot: QtBot, workspace: str = "acme") -> StorageView:
    """Click the workspace in the tree, then the Storage tab."""
    gui.wait_row(qtbot, window.navigator.tree, workspace)
    gui.click_index(
        qtbot, window.navigator.tree, gui.tree_index(window.navigator.tree, [workspace])
    )
    view = window.storage
    gui.click_tab(qtbot, window.views, "Storage")
    qtbot.waitUntil(
        lambda: view.workspace == workspace and view.storage is not None, timeout=WAIT_MS
    )
    qtbot.waitUntil(lambda: view.stream_opens > 0, timeout=WAIT_MS)  # the event stream is open
    wait_idle(qtbot, window)
    return view


def chart_point(chart_view: Any, chart_position: QPointF) -> QPoint:
    """Where a point of the chart (``QChart.mapToPosition``) is in the view's viewport."""
    scene = chart_view.chart().mapToScene(chart_position)
    return chart_view.mapFromScene(scene)


def shown_bytes(view: StorageView) -> dict[str, int | None]:
    s = view.summary
    return {
        "stored": s.stored.bytes,
        "referenced": s.referenced.bytes,
        "shared": s.shared.bytes,
        "pending": s.pending.bytes,
        "logical": s.logical.bytes,
        "saving": s.saving.bytes,
    }


def slices(view: StorageView) -> dict[str, int]:
    return {p.label(): int(p.value()) for p in view.composition.series.slices()}


def test_figures_equal_the_api_and_the_sums_of_what_was_pushed(
    registry_factory: Factory, make_window: WindowFactory, qtbot: QtBot, qtmodeltester: Any
) -> None:
    server, content = pushed(registry_factory, review_delay=300)
    sums = Sums.of(content)
    with api(server, "wsadmin") as c:
        figures = c.get("/workspaces/acme/storage").json()
        layers = c.get("/workspaces/acme/storage/shared-layers").json()["items"]
        api_layers = c.get("/workspaces/acme/storage/shared-layers?repository=api").json()

    # The API agrees with the test's own sums ...
    assert figures["stored"] == figures["referenced"] == sums.stored
    assert figures["shared"] == sums.shared
    assert figures["pending"] == 0
    assert figures["logical"] == sums.logical
    assert figures["saving"] == sums.logical - sums.stored

    # ... and the view shows exactly what the API says.
    window = make_window(server, user="wsadmin")
    view = open_storage(window, qtbot)
    assert shown_bytes(view) == {k: figures[k] for k in shown_bytes(view)}
    assert view.summary.stored.toolTip().startswith(f"{sums.stored:,} bytes")
    assert view.title.text() == "Storage of acme"

    # The donut: exclusive + shared + pending = stored.
    assert slices(view) == {
        "Exclusive": sums.stored - sums.shared,
        "Shared": sums.shared,
        "Pending GC": 0,
    }
    assert sum(slices(view).values()) == sums.stored

    # The bars: each repository's exclusive and shared bytes, largest on top.
    bars = view.repositories
    drawn = {
        r.slug: (int(bars.exclusive.at(i)), int(bars.shared.at(i)))
        for i, r in enumerate(bars.shown)
    }
    assert drawn == {"web": sums.repository("web"), "api": sums.repository("api")}
    assert sum(drawn["web"]) >= sum(drawn["api"])
    assert bars.shown[-1].slug == "web"  # drawn last: on top
    assert bars.values.ticks[-1] >= max(sum(v) for v in drawn.values())

    # The history ends at the current figures.
    history = view.history_chart
    assert history.stored.count() >= 1
    last = history.stored.at(history.stored.count() - 1)
    assert int(last.y()) == sums.stored
    assert int(history.referenced.at(history.referenced.count() - 1).y()) == sums.stored

    # Shared layers: the base layer, in every acme image (3), is the one shared here.
    model = view.layers.model
    qtbot.waitUntil(lambda: model.total is not None and not model.loading, timeout=WAIT_MS)
    assert [(layer.digest, layer.size, layer.image_count) for layer in model.layers] == [
        (item["digest"], item["size"], item["image_count"]) for item in layers
    ]
    assert content.base is not None
    row = model.row_of(content.base.digest)
    assert row is not None
    assert model.index(row, SIZE).data() == format_bytes(content.base.size)
    assert model.index(row, IMAGES).data() == "3"
    assert model.index(row, DIGEST).data(Qt.ItemDataRole.ToolTipRole) == content.base.digest
    parent = model.index(row, 0)
    children = [model.index(i, 0, parent).data() for i in range(model.rowCount(parent))]
    assert children == sorted(n for n in sums.users[content.base.digest])
    gui.click_expander(qtbot, view.layers.view, parent)
    assert view.layers.view.isExpanded(parent)
    qtmodeltester.check(model)

    # Filtering to one repository asks the server for that repository's layers.
    gui.choose_in_combo(qtbot, view.layers.repository, "api")
    qtbot.waitUntil(
        lambda: not model.loading and model.total == api_layers["total"], timeout=WAIT_MS
    )
    assert [layer.digest for layer in model.layers] == [i["digest"] for i in api_layers["items"]]
    qtmodeltester.check(model)

    # The GC panel: nothing queued by deletes, timing as the server was started.
    panel = view.gc_panel
    assert panel.pending.text() == "0 B"
    assert panel.timing.text() == "review delay 5 min, upload grace 0 s"
    assert panel.run_button.isEnabled()


def test_a_tag_delete_raises_pending_by_its_exclusive_bytes_and_run_gc_now_frees_them(
    registry_factory: Factory,
    make_window: WindowFactory,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, content = pushed(registry_factory, review_delay=300)
    sums = Sums.of(content)
    freed = sums.exclusive_to("acme/web/frontend", "v1")
    assert freed > 0
    window = make_window(server, user="wsadmin")
    view = open_storage(window, qtbot)
    refreshes, events = view.refreshes, view.events_seen

    # Someone else deletes a tag (over the API, not in this window).
    with api(server, "root") as c:
        frontend = content.ids["acme/web/frontend"]
        assert (
            c.delete(f"/images/{frontend}/tags/v1", headers=as_listed(c, frontend)).status_code
            == 204
        )
    # The event stream, not a poll, brings the new figures.
    qtbot.waitUntil(lambda: view.summary.pending.bytes == freed, timeout=WAIT_MS)
    wait_idle(qtbot, window)  # the GC status and history land after the figures
    assert view.events_seen > events
    assert view.refreshes > refreshes
    assert view.summary.stored.bytes == sums.stored
    assert view.summary.referenced.bytes == sums.stored - freed
    assert slices(view)["Pending GC"] == freed
    panel = view.gc_panel
    assert panel.status is not None
    assert panel.status.pending_bytes == freed
    assert panel.status.queued_manifests >= 1
    assert panel.next_review.text().startswith("in ")
    history = view.history_chart
    top = history.stored.at(history.stored.count() - 1).y()
    floor = history.referenced.at(history.referenced.count() - 1).y()
    assert int(top - floor) == freed  # the amber band on the right is the pending bytes

    # Run GC now, confirmed in its dialog.
    runs_before = len(view.history.gc_runs) if view.history else 0
    gui.click_button(qtbot, panel.run_button)
    box = gui.wait_dialog(qtbot, QMessageBox)
    assert box.text() == "Run garbage collection in acme now?"
    gui.click_dialog_button(qtbot, box, "Run GC now")
    qtbot.waitUntil(
        lambda: (
            view.summary.pending.bytes == 0
            and view.history is not None
            and len(view.history.gc_runs) > runs_before
        ),
        timeout=WAIT_MS,
    )
    wait_idle(qtbot, window)
    assert view.history is not None
    run = view.history.gc_runs[-1]
    assert "manual" in run.triggers
    assert run.bytes_freed == freed
    assert run.manifests_deleted == 1
    assert view.summary.stored.bytes == sums.stored - freed
    assert slices(view)["Pending GC"] == 0
    assert panel.result.text().startswith(f"GC freed {format_bytes(freed)}")

    # The run is marked in the history chart; hovering it tells what it did.
    point, marked = history.run_points[-1]
    assert marked == run
    assert history.runs.at(history.runs.count() - 1) == point
    assert history.run_near(QPointF(point.x() + 1, 0)) == run
    tip = run_text(run)
    assert "Trigger: run now" in tip
    assert f"Freed {format_bytes(freed)} ({freed:,} bytes)" in tip
    # Hovering the run's point in the chart shows that text.
    where = chart_point(history, history.chart().mapToPosition(point, history.runs))
    gui.hover(qtbot, history.viewport(), where)
    qtbot.waitUntil(lambda: QToolTip.text() == tip, timeout=WAIT_MS)
    assert f"Took {run.duration_ms} ms" in tip
    # And in the panel's last runs, newest first.
    runs = panel.runs_proxy
    assert runs.index(0, gc_panel.FREED).data() == format_bytes(freed)
    assert runs.index(0, gc_panel.TRIGGER).data() == "run now, tag deleted"
    assert runs.index(0, gc_panel.MANIFESTS).data() == "1"


def test_the_gc_worker_frees_a_deleted_image_and_the_view_follows(
    registry_factory: Factory, make_window: WindowFactory, qtbot: QtBot
) -> None:
    server, content = pushed(registry_factory, review_delay=1)
    sums = Sums.of(content)
    exclusive = sum(sums.sizes[d] for d, names in sums.users.items() if names == {BACKEND})
    remaining = Content({n: t for n, t in content.tagged.items() if n != BACKEND})
    after = Sums.of(remaining)
    assert after.stored == sums.stored - exclusive
    window = make_window(server, user="wsadmin")
    view = open_storage(window, qtbot)
    runs_before = {run.id for run in view.history.gc_runs} if view.history else set()
    # Hidden behind Browse, the view only notes that it is stale.
    gui.click_tab(qtbot, window.views, "Browse")
    refreshes, events = view.refreshes, view.events_seen
    with api(server, "root") as c:
        backend = content.ids[BACKEND]
        assert c.delete(f"/images/{backend}", headers=as_listed(c, backend)).status_code == 204

    def freed_by_new_runs() -> int:
        assert view.history is not None
        return sum(r.bytes_freed for r in view.history.gc_runs if r.id not in runs_before)

    qtbot.waitUntil(lambda: view.stale and view.events_seen > events, timeout=WAIT_MS)
    assert view.refreshes == refreshes
    gui.click_tab(qtbot, window.views, "Storage")
    qtbot.waitUntil(
        lambda: (
            view.storage is not None
            and view.storage.stored == sums.stored - exclusive
            and freed_by_new_runs() == exclusive
        ),
        timeout=WAIT_MS,
    )
    assert view.summary.pending.bytes == 0
    assert view.summary.stored.bytes == after.stored
    assert view.summary.shared.bytes == after.shared
    bars = view.repositories
    drawn = {
        r.slug: (int(bars.exclusive.at(i)), int(bars.shared.at(i)))
        for i, r in enumerate(bars.shown)
    }
    assert drawn == {"web": after.repository("web"), "api": after.repository("api")}


def test_run_gc_now_is_for_workspace_admins_only(
    registry_factory: Factory, make_window: WindowFactory, qtbot: QtBot
) -> None:
    server, _ = pushed(registry_factory, review_delay=300)
    for user in ("reader", "admin"):  # a member, and an admin of one repository only
        window = make_window(server, user=user)
        view = open_storage(window, qtbot)
        button = view.gc_panel.run_button
        assert not button.isEnabled(), user
        assert button.toolTip() == (
            "Running GC needs workspace admin in acme; you are not an admin of this workspace."
        )
        assert view.run_gc() is None  # the action refuses without asking
        # The server is the one that decides, whatever the window shows.
        assert view.backend is not None
        backend = view.backend
        task = window.ops.run(backend.run_gc("acme"), name="bypass")
        qtbot.waitUntil(task.done, timeout=WAIT_MS)
        assert isinstance(task.exception(), PermissionDenied)
        window.error_bar.clear()
    admin = make_window(server, user="wsadmin")
    view = open_storage(admin, qtbot)
    assert view.gc_panel.run_button.isEnabled()
    assert "Review everything queued in acme now" in view.gc_panel.run_button.toolTip()
    superuser = make_window(server, user="root")
    assert open_storage(superuser, qtbot).gc_panel.run_button.isEnabled()


def test_clicking_a_repository_bar_selects_it_in_the_tree(
    registry_factory: Factory, make_window: WindowFactory, qtbot: QtBot
) -> None:
    server, _ = pushed(registry_factory, review_delay=300)
    window = make_window(server, user="wsadmin")
    view = open_storage(window, qtbot)
    bars = view.repositories
    index = next(i for i, r in enumerate(bars.shown) if r.slug == "api")
    assert "api (project PLAT)" in bars.bar_tip(index)
    shown = bars.shown[index]
    middle = QPointF(shown.exclusive + shown.shared / 2, index)
    gui.click(
        qtbot, bars.viewport(), chart_point(bars, bars.chart().mapToPosition(middle, bars.series))
    )
    qtbot.waitUntil(
        lambda: window.navigator.current_path() == ("acme", "PLAT", "api"), timeout=WAIT_MS
    )
    node = window.navigator.tree.currentIndex().data(ObjectRole)
    assert isinstance(node, Node)
    assert node.kind == "repository"
    assert view.layers.selected_repository == "api"
    # The images list follows the tree, as for any selection there.
    wait_idle(qtbot, window)
    assert {i.repository for i in window.browse.images_model.rows} == {"api"}
    # Back to the workspace: the layers of every repository again.
    gui.click_tab(qtbot, window.views, "Browse")
    gui.click_index(qtbot, window.navigator.tree, gui.tree_index(window.navigator.tree, ["acme"]))
    assert view.layers.selected_repository == ""
    # The workspace's images are loading now: the test ends once all of them are shown.
    with api(server, "wsadmin") as c:
        items = c.get("/workspaces/acme/images").json()["items"]
    everywhere = {i["full_name"].split("/")[1] for i in items}
    assert len(everywhere) > 1
    qtbot.waitUntil(
        lambda: (
            {i.repository for i in window.browse.images_model.rows} == everywhere
            and not window.ops.busy
        ),
        timeout=WAIT_MS,
    )


def test_a_burst_of_events_is_one_refresh(
    registry_factory: Factory, make_window: WindowFactory, qtbot: QtBot
) -> None:
    server, _ = pushed(registry_factory, review_delay=300)
    window = make_window(server, user="wsadmin")
    view = open_storage(window, qtbot)
    before = view.refreshes
    for i in range(50):
        view.on_event(ServerEvent("pushed", {"tag": f"t{i}"}, str(i)))
    view.on_event(ServerEvent("message", "not one of ours", None))
    qtbot.waitUntil(lambda: view.refreshes == before + 1, timeout=WAIT_MS)
    wait_idle(qtbot, window)
    qtbot.wait(1500)  # longer than the debounce and the minimum interval
    assert view.refreshes == before + 1


def test_charts_follow_the_palette(
    registry_factory: Factory, make_window: WindowFactory, qtbot: QtBot
) -> None:
    server, _ = pushed(registry_factory, review_delay=300)
    window = make_window(server, user="wsadmin")
    view = open_storage(window, qtbot)
    dark = QPalette(QApplication.palette())
    dark.setColor(QPalette.ColorRole.Window, QColor("#202124"))
    dark.setColor(QPalette.ColorRole.WindowText, QColor("#e8eaed"))
    view.setPalette(dark)
    for chart in (view.composition, view.repositories, view.history_chart):
        assert chart.chart().backgroundBrush().color() == QColor("#202124")
        assert chart.chart().titleBrush().color() == QColor("#e8eaed")
        for axis in chart.chart().axes():
            assert axis.labelsColor() == QColor("#e8eaed")


def test_the_toolbar_shows_pending_gc_while_the_browse_tab_is_open(
    registry_factory: Factory, make_window: WindowFactory, qtbot: QtBot
) -> None:
    server, content = pushed(registry_factory, review_delay=300)
    freed = Sums.of(content).exclusive_to("acme/web/frontend", "v1")
    window = make_window(server, user="wsadmin")
    gui.click_index(qtbot, window.navigator.tree, gui.tree_index(window.navigator.tree, ["acme"]))
    view = window.storage
    indicator = view.indicator
    assert indicator is not None
    assert window.views.currentWidget() is window.browse  # the storage tab stays hidden
    qtbot.waitUntil(lambda: indicator.workspace == "acme", timeout=WAIT_MS)
    assert indicator.shown
    assert indicator.isVisible()
    assert indicator.pending == 0
    assert indicator.text() == "GC: 0 B pending"
    qtbot.waitUntil(lambda: view.stream_opens > 0, timeout=WAIT_MS)

    with api(server, "root") as c:
        frontend = content.ids["acme/web/frontend"]
        assert (
            c.delete(f"/images/{frontend}/tags/v1", headers=as_listed(c, frontend)).status_code
            == 204
        )
    qtbot.waitUntil(lambda: indicator.pending == freed, timeout=WAIT_MS)
    assert indicator.text() == f"GC: {format_bytes(freed)} pending"
    assert f"{freed:,} bytes in acme" in indicator.toolTip()
    assert window.views.currentWidget() is window.browse

    gui.click_button(qtbot, indicator)
    assert window.views.currentWidget() is view
    qtbot.waitUntil(lambda: view.summary.pending.bytes == freed, timeout=WAIT_MS)
    wait_idle(qtbot, window)
