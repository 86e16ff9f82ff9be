"""The storage view shows one moment (issue 11 item 4): a GC run that lands between the
requests of a refresh never leaves figures from before it beside a GC panel from
after it. A proxy in front of the real registry puts the run (or a slow answer)
exactly between two requests; the test samples what the view shows every few
milliseconds until it shows the run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from app.ui.main_window import MainWindow
from app.ui.storage.view import StorageView
from tests.support import gui
from tests.support.api import api, as_listed, push_content
from tests.support.proxy import Proxy
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch

FIGURES = r"/workspaces/acme/storage(/overview)?$"  # not shared-layers, not history
Shown = tuple[int | None, int | None, int, str]


def exact(card_tip: str) -> int:
    """The exact bytes a figure card's tooltip states ("1,234 bytes\\n...")."""
    return int(card_tip.split(" bytes", 1)[0].replace(",", ""))


def shown(view: StorageView) -> Shown:
    """(stored, pending) as the figure cards show them, the GC runs listed and the GC
    panel's line about the last run asked for."""
    cards = view.summary
    tips = [cards.stored.value.toolTip(), cards.pending.value.toolTip()]
    stored, pending = (exact(t) if t else None for t in tips)
    return stored, pending, gui.model_rows(view.gc_panel.runs), view.gc_panel.result.text()


@dataclass
class Scene:
    server: RegistryServer
    proxy: Proxy
    window: MainWindow
    view: StorageView
    before: dict[str, Any]  # the storage figures with a tag's bytes pending
    seen: list[Shown]

    @property
    def pre(self) -> tuple[int, int, int]:
        return self.before["stored"], self.before["pending"], 0

    @property
    def post(self) -> tuple[int, int, int]:
        return self.before["stored"] - self.before["pending"], 0, 1


@pytest.fixture
def scene(
    registry_factory: Callable[..., RegistryServer], launch: Launch, qtbot: QtBot
) -> Iterator[Scene]:
    """A tag's exclusive bytes pending, no GC run yet, the app on the Storage tab
    through a proxy, and a sampler noting what the view shows every 5 ms."""
    server = registry_factory(review_delay=3600)  # only the run the test asks for frees
    content = push_content(server)
    server.upload_grace = 0  # pushed under the grace; now GC may free at once
    server.restart()
    with api(server, "wsadmin") as c:
        fe = content.ids["acme/web/frontend"]
        assert c.delete(f"/images/{fe}/tags/v1", headers=as_listed(c, fe)).status_code == 204
        before = c.get("/workspaces/acme/storage").json()
        assert before["pending"] > 0
        assert c.get("/workspaces/acme/gc").json()["recent_runs"] == []
    with Proxy(server.url) as proxy:
        window = launch(cast(RegistryServer, proxy), "wsadmin")  # launch reads only .url
        gui.click_tab(qtbot, window.views, "Storage")
        view = window.storage
        sc = Scene(server, proxy, window, view, before, [])
        qtbot.waitUntil(lambda: shown(view)[:3] == sc.pre and not window.ops.busy, timeout=WAIT_MS)
        sampler = QTimer()
        sampler.timeout.connect(lambda: sc.seen.append(shown(view)))
        sampler.start(5)
        yield sc
        sampler.stop()
        window.close()  # before the proxy goes
        qtbot.waitUntil(lambda: window.closed, timeout=WAIT_MS)


def mixed(sc: Scene) -> list[Shown]:
    """What was shown with the run (listed, or what it freed said) beside other figures."""
    return [s for s in sc.seen if (s[2] or s[3].startswith("GC freed")) and s[:3] != sc.post]


def test_a_gc_run_between_the_requests_of_a_refresh(scene: Scene, qtbot: QtBot) -> None:
    sc, view = scene, scene.view
    freed: list[int] = []

    def run_gc() -> None:
        with api(sc.server, "wsadmin") as c:
            run = c.post("/workspaces/acme/gc/run")
            assert run.status_code == 200, run.text
            freed.append(run.json()["bytes_freed"])

    sc.proxy.between(FIGURES, run_gc)
    refreshes = view.refreshes
    gui.click_button(qtbot, view.refresh_button)
    qtbot.waitUntil(lambda: view.refreshes > refreshes or sc.proxy.fired.is_set(), timeout=WAIT_MS)
    if not sc.proxy.fired.is_set():
        # The refresh asked nothing after its figures: the next one's first request
        # comes after them, and GC runs just before it.
        gui.click_button(qtbot, view.refresh_button)
    qtbot.waitUntil(sc.proxy.fired.is_set, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: shown(view)[:3] == sc.post, timeout=WAIT_MS)
    assert freed == [sc.before["pending"]]
    assert (*sc.pre, "") in sc.seen
    assert mixed(sc) == [], f"figures from another moment beside the run: {mixed(sc)[:3]}"


def test_run_gc_now_says_what_it_freed_beside_the_figures_after_it(
    scene: Scene, qtbot: QtBot
) -> None:
    sc, view = scene, scene.view
    # The answer to the run arrives; the next request (the figures) is slow.
    sc.proxy.between(r"/workspaces/acme/gc/run$", lambda: time.sleep(0.5))
    gui.click_button(qtbot, view.gc_panel.run_button)
    box = gui.wait_dialog(qtbot, QMessageBox)
    gui.click_dialog_button(qtbot, box, "Run GC now")
    qtbot.waitUntil(lambda: shown(view)[3].startswith("GC freed "), timeout=WAIT_MS)
    assert sc.proxy.fired.is_set()
    assert shown(view)[:3] == sc.post
    assert mixed(sc) == [], f"figures from another moment beside the run: {mixed(sc)[:3]}"
