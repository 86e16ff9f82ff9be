"""The storage view on a large workspace (on demand:
``.venv/bin/pytest tests/benchmarks/bench_storage_view.py -s``).

A workspace of 100,000 manifests (1,000 images of 100 tagged manifests, in 50
repositories) and 10,000 shared layers (each reached by 4 images), with 2,000
storage samples and 300 GC runs of history, seeded in bulk into the metadata store
through app.registry's schema (rows as pushes would leave them; no blob files: the
view reads only metadata). A real ``berth-registry serve`` answers.

Printed (medians of ``BENCH_ROUNDS``, default 3):

* each request the view makes, timed alone against the server (where the time goes);
* opening the view on the workspace: from the request to the figures, charts and
  GC panel painted, and to the first page of shared layers painted (target ≤ 1 s);
* the longest event-loop stall meanwhile (a 5 ms QTimer probe; target ≤ 50 ms).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import httpx
import pytest
from PySide6.QtCore import QEvent, QObject, QSize
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot
from sqlalchemy import insert

from app.client.credentials import CredentialStore
from app.client.profiles import Profile
from app.registry import accounts
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.service import Registry
from app.ui.common.settings import Settings
from app.ui.main_window import MainWindow
from tests.benchmarks.bench_ui import _StallProbe
from tests.support.keyrings import MemoryKeyring
from tests.support.registry import PASSWORD, RegistryServer
from tests.ui.conftest import memory_keyring, qt_loop  # noqa: F401  (fixtures)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
IMAGES = 1_000
PER_IMAGE = 100  # manifests (one tag each): 100,000 in all
REPOSITORIES = 50
PROJECTS = 5
SHARED = 10_000
SHARED_PER_IMAGE = 40  # each shared layer is reached by IMAGES * 40 / SHARED = 4 images
SHARED_PER_MANIFEST = 4
UNREFERENCED = 1_000  # blobs pending GC
SAMPLES = 2_000
RUNS = 300
CHUNK = 5_000
DAY_MS = 86_400_000


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


def _digest(kind: str, n: int) -> str:
    return f"sha256:{uuid.uuid5(uuid.NAMESPACE_OID, f'{kind}{n}').hex * 2}"


def seed(data: Path) -> None:
    reg = Registry.open(data)
    try:
        with reg.db.write() as conn:
            ws = accounts.add_workspace(conn, "acme")
            repos = []
            for p in range(PROJECTS):
                accounts.add_project(conn, "acme", f"P{p}")
            for r in range(REPOSITORIES):
                repos.append(accounts.add_repository(conn, "acme", f"repo{r:02d}", f"P{r % 5}"))
            accounts.add_user(conn, "bench", PASSWORD, superuser=True)
        now = now_ms()
        old = now - 120 * DAY_MS
        blobs: list[dict[str, Any]] = []

        def blob(kind: str, n: int, size: int, refs: int) -> int:
            blobs.append(
                {
                    "id": len(blobs) + 1,
                    "workspace_id": ws,
                    "digest": _digest(kind, n),
                    "size": size,
                    "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "generation": str(uuid.uuid4()),
                    "created_at": old,
                    "touched_at": old,
                    "image_refs": refs,
                }
            )
            return len(blobs)

        refs = IMAGES * SHARED_PER_IMAGE // SHARED
        shared = [
            blob("shared", i, 1_000_000 + (i * 7919) % 50_000_000, refs) for i in range(SHARED)
        ]
        for i in range(UNREFERENCED):
            blob("loose", i, 100_000 + i, 0)
        images, manifests, layers, tags, links, usage = [], [], [], [], [], []
        for img in range(IMAGES):
            image_id = img + 1
            images.append(
                {
                    "id": image_id,
                    "repository_id": repos[img % REPOSITORIES],
                    "workspace_id": ws,
                    "name": f"img{img:04d}",
                    "created_at": old,
                    "last_push_at": now,
                }
            )
            mine = [shared[(img * SHARED_PER_IMAGE + k) % SHARED] for k in range(SHARED_PER_IMAGE)]
            picks: Counter[int] = Counter()
            for bid in mine:
                links.append({"image_id": image_id, "blob_id": bid, "linked_at": old})
            for j in range(PER_IMAGE):
                n = img * PER_IMAGE + j
                config = blob("config", n, 1_500, 1)
                own = blob("own", n, 200_000 + n % 10_000, 1)
                mid = n + 1
                picked = [mine[(j * SHARED_PER_MANIFEST + k) % SHARED_PER_IMAGE]
                          for k in range(SHARED_PER_MANIFEST)]  # fmt: skip
                manifests.append(
                    {
                        "id": mid,
                        "workspace_id": ws,
                        "image_id": image_id,
                        "digest": _digest("manifest", n),
                        "media_type": "application/vnd.oci.image.manifest.v1+json",
                        "artifact_type": None,
                        "payload": b"{}",
                        "config_blob_id": config,
                        "subject_digest": None,
                        "total_size": 0,
                        "platforms": "linux/amd64",
                        "created": "2026-01-01T00:00:00Z",
                        "annotations": None,
                        "created_at": old,
                        "touched_at": old,
                        "holders": 1,  # its tag
                    }
                )
                picks.update(set(picked))
                for pos, bid in enumerate([*picked, own]):
                    layers.append({"manifest_id": mid, "position": pos, "blob_id": bid})
                tags.append(
                    {
                        "image_id": image_id,
                        "name": f"v{j}",
                        "manifest_id": mid,
                        "pushed_at": old,
                        "manifest_size": manifests[-1]["total_size"],
                        "manifest_created": manifests[-1]["created"],
                    }
                )
                for bid in (config, own):
                    links.append({"image_id": image_id, "blob_id": bid, "linked_at": old})
                    usage.append({"image_id": image_id, "blob_id": bid, "refs": 1})
            # Live manifests of the image referencing each of its shared blobs.
            usage += [{"image_id": image_id, "blob_id": b, "refs": n} for b, n in picks.items()]
        stored = sum(b["size"] for b in blobs)
        pending = sum(b["size"] for b in blobs if b["image_refs"] == 0)
        samples = [
            {
                "workspace_id": ws,
                "at": old + k * (120 * DAY_MS // SAMPLES),
                "stored": stored * (k + 1) // SAMPLES,
                "referenced": (stored - pending) * (k + 1) // SAMPLES,
                "pending": pending * (k % 7) // 7,
            }
            for k in range(SAMPLES)
        ]
        runs = [
            {
                "workspace_id": ws,
                "triggers": "tag_delete,blob_upload",
                "started_at": old + k * (120 * DAY_MS // RUNS),
                "duration_ms": 20 + k % 200,
                "manifests_deleted": k % 30,
                "blobs_deleted": k % 60,
                "bytes_freed": (k % 60) * 1_000_000,
            }
            for k in range(RUNS)
        ]
        with reg.db.write() as conn:
            for table, rows in (
                (s.images, images),
                (s.blobs, blobs),
                (s.manifests, manifests),
                (s.manifest_layers, layers),
                (s.tags, tags),
                (s.image_blobs, links),
                (s.blob_usage, usage),
                (s.storage_samples, samples),
                (s.gc_runs, runs),
            ):
                for chunk in _chunks(rows):
                    conn.execute(insert(table), chunk)
    finally:
        reg.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    data = tmp_path_factory.mktemp("storage-bench") / "data"
    started = time.perf_counter()
    seed(data)
    print(f"\nseeded {IMAGES * PER_IMAGE:,} manifests in {time.perf_counter() - started:.0f} s")
    registry = RegistryServer(data).start()
    try:
        yield registry
    finally:
        registry.stop()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def test_the_server_side_of_the_view(server: RegistryServer) -> None:
    """Each request the view makes, alone: where the time goes."""
    paths = {
        "storage": "/workspaces/acme/storage",
        "gc status": "/workspaces/acme/gc",
        "history": "/workspaces/acme/storage/history",
        "overview (the three in one transaction: what the view asks)": (
            "/workspaces/acme/storage/overview"
        ),
        "shared layers (first page)": "/workspaces/acme/storage/shared-layers?limit=200",
        "shared layers of one repository": (
            "/workspaces/acme/storage/shared-layers?limit=200&repository=repo07"
        ),
        "shared layers by image count": (
            "/workspaces/acme/storage/shared-layers?limit=200&sort=-image_count"
        ),
    }
    with httpx.Client(base_url=server.url + "/api/v1", auth=("bench", PASSWORD), timeout=120) as c:
        figures = c.get(paths["storage"]).json()
        assert figures["shared"] > 0
        assert figures["pending"] > 0
        assert c.get(paths["shared layers (first page)"]).json()["total"] == SHARED
        lines = []
        for name, path in paths.items():
            times = []
            for _ in range(ROUNDS):
                t = time.perf_counter()
                r = c.get(path)
                times.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
            lines.append(f"  {name}: {_ms(statistics.median(times))} ms")
    print("\nserver, one request at a time (median):\n" + "\n".join(lines))


class _AfterPaint(QObject):
    """The first paint of any of ``widgets`` once ``armed`` is true."""

    def __init__(self, widgets: list[QWidget], armed: Callable[[], bool]) -> None:
        super().__init__()
        self.armed = armed
        self.at: float | None = None
        for widget in widgets:
            widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and self.at is None and self.armed():
            self.at = time.perf_counter()
        return False


@dataclass
class Opened:
    figures: float  # s to the headline figures and the donut and bars painted
    complete: float  # s to the history chart and GC panel painted too
    layers: float  # s to the first page of shared layers painted
    stall: int  # ms, the longest event-loop stall meanwhile


def open_once(window: MainWindow, qtbot: QtBot) -> Opened:
    """Open the view on acme, as selecting the workspace does."""
    view = window.storage
    view.set_workspace(None, False)
    qtbot.wait(200)
    landed: list[float] = []
    view.refreshed.connect(lambda: landed.append(time.perf_counter()))
    model = view.layers.model
    figures = _AfterPaint([view.composition.viewport()], lambda: view.storage is not None)
    charts = _AfterPaint(
        [view.history_chart.viewport(), view.gc_panel.runs.viewport()], lambda: bool(landed)
    )
    table = _AfterPaint([view.layers.view.viewport()], lambda: bool(model.layers))
    probes = (figures, charts, table)
    probe = _StallProbe()
    probe.start()
    started = time.perf_counter()
    view.set_workspace("acme", True)  # the request: everything the view shows
    qtbot.waitUntil(lambda: all(p.at is not None for p in probes), timeout=120_000)
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=120_000)
    probe.stop()
    view.refreshed.disconnect()
    assert figures.at is not None
    assert charts.at is not None
    assert table.at is not None
    assert view.storage is not None
    assert view.storage.blob_count == SHARED + UNREFERENCED + 2 * IMAGES * PER_IMAGE
    assert model.total == SHARED
    assert view.history_chart.stored.count() >= 1000
    assert view.history_chart.runs.count() == RUNS
    return Opened(figures.at - started, charts.at - started, table.at - started, probe.longest)


def test_opening_the_storage_view(
    server: RegistryServer,
    qt_loop: asyncio.AbstractEventLoop,  # noqa: F811
    memory_keyring: MemoryKeyring,  # noqa: F811
    qtbot: QtBot,
    tmp_path: Path,
) -> None:
    window = MainWindow(Settings.at(tmp_path / "s.ini"), CredentialStore(backend=memory_keyring))
    window.resize(QSize(1360, 860))
    window.show()
    qtbot.waitExposed(window)
    window.open_profile(Profile("bench", server.url, "bench"), PASSWORD)
    qtbot.waitUntil(lambda: window.backend is not None and not window.ops.busy, timeout=120_000)
    view = window.storage
    window.views.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.storage is not None and not window.ops.busy, timeout=120_000)
    rounds: list[Opened] = []
    try:
        for _ in range(ROUNDS):
            rounds.append(open_once(window, qtbot))
    finally:
        window.close()
        qtbot.waitUntil(lambda: window.closed, timeout=30_000)
        window.deleteLater()

    def median(field: str) -> float:
        return _ms(statistics.median(getattr(r, field) for r in rounds))

    stalls = [r.stall for r in rounds]
    print(
        f"\nstorage view, {IMAGES * PER_IMAGE:,} manifests and {SHARED:,} shared layers "
        f"({ROUNDS} rounds, medians; target ≤ 1000 ms): request → headline figures, donut "
        f"and bars painted {median('figures')} ms; → history and GC panel painted "
        f"{median('complete')} ms; → first page of shared layers painted {median('layers')} "
        f"ms. Longest event-loop stall {statistics.median(stalls)} ms, worst {max(stalls)} ms "
        "(target ≤ 50)"
    )
