"""The "OCI registry" connection kind against a real CNCF Distribution 2.8
(Debian's docker-registry) over TLS with htpasswd Basic auth, content pushed by
skopeo: images that share a base layer, tags that share digests, an index.

Through the window: the tree grouped by path segment, tags filling in with their
details, the capability banner, the storage scan (figures checked against sums
made here from what was pushed), the safe delete of one of two tags on a digest
(the other still pulls), deleting images; then ``docker-registry garbage-collect``
frees exactly what the confirmations predicted. And a registry with deletes off:
said in the banner, delete actions greyed with that reason."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.client.berth_api import DeleteImpact, Tag
from app.client.profiles import Profile
from app.ui.backends.deletion import DeleteMethod, DeletePlan
from app.ui.backends.oci import OciBackend
from app.ui.common import confirm_delete
from app.ui.main_window import MainWindow
from tests.support import oci
from tests.support.distribution import PASSWORD, USER, DistributionServer, push_image
from tests.support.tools import require
from tests.ui.conftest import WindowFactory, wait_idle

pytestmark = pytest.mark.e2e

BASE = oci.random_layer(150_000, "oci-ui-base")
APP1 = oci.image([BASE, oci.random_layer(40_000, "oci-ui-app1")], created="2026-03-01T10:00:00Z")
APP2 = oci.image([BASE, oci.random_layer(45_000, "oci-ui-app2")], created="2026-03-02T10:00:00Z")
WORKER = oci.image([BASE, oci.random_layer(30_000, "oci-ui-worker")])
FRONTEND = oci.image([BASE, oci.random_layer(20_000, "oci-ui-frontend")])
AMD = oci.image([oci.random_layer(20_000, "oci-ui-multi"), oci.random_layer(10_000, "oci-ui-amd")])
ARM = oci.image(
    [oci.random_layer(20_000, "oci-ui-multi"), oci.random_layer(11_000, "oci-ui-arm")],
    arch="arm64",
)
MULTI = oci.index([AMD, ARM])

PUSHED: dict[str, dict[str, oci.Image]] = {
    "team/app": {"v1": APP1, "latest": APP1, "v2": APP2},
    "team/worker": {"1.0": WORKER, "1.1": WORKER},
    "team/web/frontend": {"1": FRONTEND},
    "tools/multi": {"1": MULTI},
}


def expected(pushed: dict[str, dict[str, oci.Image]]) -> tuple[int, int, dict[str, int]]:
    """(referenced, shared, exclusive per image), summed here from what was pushed."""
    per_image = {
        name: {d: s for img in tags.values() for d, s in img.reachable().items()}
        for name, tags in pushed.items()
    }
    users: dict[str, set[str]] = defaultdict(set)
    sizes: dict[str, int] = {}
    for name, blobs in per_image.items():
        for digest, size in blobs.items():
            users[digest].add(name)
            sizes[digest] = size
    shared = sum(sizes[d] for d, u in users.items() if len(u) > 1)
    exclusive = {
        name: sum(s for d, s in blobs.items() if len(users[d]) == 1)
        for name, blobs in per_image.items()
    }
    return sum(sizes.values()), shared, exclusive


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("skopeo"), *args], capture_output=True, text=True, check=False)


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[DistributionServer]:
    yield from seeded_distribution(tmp_path)


def seeded_distribution(tmp_path: Path) -> Iterator[DistributionServer]:
    """A Distribution server holding PUSHED (pushed with skopeo); stopped after."""
    server = DistributionServer(tmp_path / "dist").start()
    try:
        for name, tags in PUSHED.items():
            layout = oci.write_layout(tmp_path / "layouts" / name.replace("/", "_"), tags)
            for tag in tags:
                pushed = skopeo(
                    "copy", "--quiet", "--all", *server.skopeo_tls_args("dest"),
                    f"oci:{layout}:{tag}", f"docker://{server.host}/{name}:{tag}",
                )  # fmt: skip
                assert pushed.returncode == 0, pushed.stderr
        yield server
    finally:
        server.stop()


def connect(window: MainWindow, qtbot: QtBot, server: DistributionServer) -> OciBackend:
    assert server.ca_file is not None
    profile = Profile("dist", server.url, USER, kind="oci", ca_bundle=str(server.ca_file))
    window.open_profile(profile, PASSWORD)
    wait_idle(qtbot, window)
    backend = window.backend
    assert isinstance(backend, OciBackend), window.error_bar.text
    return backend


def open_image(window: MainWindow, qtbot: QtBot, path: tuple[str, ...], name: str) -> None:
    assert window.navigator.select_path(path)
    qtbot.waitUntil(lambda: any(i.full_name == name for i in window.browse.images_model.rows))


def tag_rows(window: MainWindow) -> dict[str, Tag]:
    return {t.name: t for t in window.browse.tags_model.rows}


class Answers:
    """Stands in for the confirmation seams and records what they were shown."""

    def __init__(self) -> None:
        self.methods: list[DeletePlan] = []
        self.confirms: list[tuple[DeletePlan, DeleteImpact | None, str | None]] = []
        self.chosen: list[DeleteMethod] = []

    async def choose(self, parent: Any, plan: DeletePlan, error: Any = None) -> DeleteMethod:
        self.methods.append(plan)
        self.chosen.append(plan.methods[0])  # the default: what Enter would pick
        return plan.methods[0]

    async def confirm(self, parent: Any, plan: DeletePlan, impact: Any, error: Any = None) -> bool:
        self.confirms.append((plan, impact, error))
        return True


def select_image(window: MainWindow, qtbot: QtBot, name: str) -> None:
    model = window.browse.images_model
    image = next(i for i in model.rows if i.full_name == name)
    window.browse.images.select_keys([image.id], current=image.id)
    qtbot.waitUntil(
        lambda: window.browsing.image is not None and window.browsing.image.full_name == name
    )
    wait_idle(qtbot, window)


def test_browse_scan_safe_delete_image_delete_and_gc(
    distribution: DistributionServer,
    make_window: WindowFactory,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    window = make_window()
    connect(window, qtbot, distribution)
    host = distribution.host

    # The tree: the registry, then namespaces by path segment (loaded on expand).
    root = window.navigator.nav_model.root.children[0]
    assert root.name == host
    assert root.count == 4
    assert [c.name for c in root.children] == ["team", "tools"]
    team = window.navigator.nav_model.find((host, "team"))
    assert team is not None
    window.navigator.tree.expand(
        window.navigator.nav_proxy.mapFromSource(window.navigator.nav_model.index_of(team))
    )
    wait_idle(qtbot, window)
    assert [c.name for c in team.children] == ["web"]
    assert team.count == 3

    # Capabilities, found once when connecting: a banner and the status bar.
    banner = window.oci.banner
    assert banner.isVisible()
    assert "only by digest" in banner.label.text()
    assert "referrers" in banner.label.text()
    assert window.oci.status.text() == (
        "OCI registry: catalog · deletes by digest only · no referrers API"
    )

    # Images under "team", their tag counts filled in as the tag lists arrive.
    assert window.navigator.select_path((host, "team"))
    qtbot.waitUntil(lambda: window.browse.images_model.rowCount() == 3)
    wait_idle(qtbot, window)
    images = {i.full_name: i for i in window.browse.images_model.rows}
    assert set(images) == {"team/app", "team/worker", "team/web/frontend"}
    assert {n: i.tag_count for n, i in images.items()} == {
        "team/app": 3,
        "team/worker": 2,
        "team/web/frontend": 1,
    }
    assert images["team/app"].size == -1  # not measured before a scan: shown as "—"
    size_column = window.browse.images_model.index(0, 2)
    assert size_column.data() == "—"

    # Tags: rows first, details as they arrive; v1 and latest share a digest.
    select_image(window, qtbot, "team/app")
    rows = tag_rows(window)
    assert set(rows) == {"v1", "latest", "v2"}
    assert rows["v1"].digest == rows["latest"].digest == APP1.digest
    assert rows["v2"].digest == APP2.digest
    assert rows["v1"].size == sum(APP1.reachable().values())
    assert rows["v1"].platforms == ("linux/amd64",)
    assert rows["v1"].created is not None
    assert rows["v1"].created.isoformat().startswith("2026-03-01T10:00:00")
    assert rows["v1"].other_tags == ("latest",)
    window.browse.tags.select_keys(["v1"], current="v1")
    wait_idle(qtbot, window)
    details = window.browse.details
    assert details.fields["digest"].text() == APP1.digest
    assert details.layers_model.rowCount() == 2

    # Storage: scanned by the client; the figures equal sums made here.
    window.views.setCurrentWidget(window.oci_storage)
    storage = window.oci_storage
    storage.start_scan()
    wait_idle(qtbot, window)
    seen = storage.progress_seen[-1]
    assert (seen.repositories_done, seen.tags_done) == (4, 7)
    assert storage.progress.isHidden()
    referenced, shared, exclusive = expected(PUSHED)
    assert storage.referenced.bytes == referenced
    assert storage.shared.bytes == shared == BASE.size
    assert storage.stored.bytes is None
    assert storage.pending.bytes is None
    assert "garbage-collect" in storage.gc_note.text()
    assert {r.name: r.exclusive for r in storage.images_model.rows} == exclusive
    assert [x.digest for x in storage.layers_model.rows] == [BASE.digest]
    # The images table and the details now show sizes and sharing too.
    qtbot.waitUntil(lambda: window.browse.images_model.rows[0].size >= 0)
    images = {i.full_name: i for i in window.browse.images_model.rows}
    assert images["team/worker"].exclusive_size == exclusive["team/worker"]
    wait_idle(qtbot, window)
    base_row = next(x for x in details.layers_model.rows if x.digest == BASE.digest)
    assert base_row.image_count == 3  # app, worker, frontend
    disk_before = sum(distribution.blob_bytes().values())
    assert disk_before == referenced

    # Delete v1 only: the registry deletes by digest; the confirmation names latest
    # and offers the safe path first; taking it keeps latest pullable.
    answers = Answers()
    monkeypatch.setattr(confirm_delete, "choose_delete_method", answers.choose)
    monkeypatch.setattr(confirm_delete, "confirm_delete", answers.confirm)
    window.views.setCurrentWidget(window.browse)
    window.browse.tags.select_keys(["v1"], current="v1")
    window.browse.tags.view.setFocus()
    qtbot.keyClick(window.browse.tags.view, Qt.Key.Key_Delete)
    wait_idle(qtbot, window)
    assert len(answers.methods) == 1
    assert not answers.confirms
    plan = answers.methods[0]
    assert plan.names == ["v1"]
    assert plan.staying == {APP1.digest: ["latest"]}
    assert [m.key for m in plan.methods] == ["placeholder", "digest"]
    assert plan.methods[1].also_deleted == ("latest",)
    assert plan.methods[0].impact == DeleteImpact(0, sum(APP1.reachable().values()), 0, 4)
    predicted = [answers.chosen[0].impact]
    assert set(tag_rows(window)) == {"latest", "v2"}
    pulled = skopeo(
        "copy", "--quiet", *distribution.skopeo_tls_args("src"),
        f"docker://{host}/team/app:latest", f"oci:{tmp_path / 'pulled'}:latest",
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    gone = skopeo("inspect", *distribution.skopeo_tls_args(None), f"docker://{host}/team/app:v1")
    assert gone.returncode != 0

    # Delete whole images: typed-name confirmation (the seam), all manifests go.
    for name in ("team/worker", "tools/multi"):
        scope = (host, "tools") if name.startswith("tools") else (host, "team")
        assert window.navigator.select_path(scope)
        qtbot.waitUntil(
            lambda n=name: any(i.full_name == n for i in window.browse.images_model.rows)
        )
        select_image(window, qtbot, name)
        assert window.acts.delete_image.isEnabled()
        window.browsing.delete_current_image()
        wait_idle(qtbot, window)
        plan, impact, error = answers.confirms[-1]
        assert plan.whole_image
        assert plan.image.full_name == name
        assert plan.image.tag_count == len(PUSHED[name])
        assert error is None
        assert impact is not None
        assert impact.freed == exclusive[name]
        predicted.append(impact)
        # The row leaves once the window has read the list again (after the delete).
        qtbot.waitUntil(
            lambda n=name: all(i.full_name != n for i in window.browse.images_model.rows),
            timeout=20_000,
        )
        with distribution.http_client() as http:
            assert not http.get(f"/v2/{name}/tags/list").json().get("tags")
    assert storage.unreferenced.bytes == sum(p.freed for p in predicted if p is not None)

    # The registry's own GC frees exactly what the confirmations said.
    distribution.stop()
    distribution.garbage_collect()
    freed = disk_before - sum(distribution.blob_bytes().values())
    assert freed == sum(p.freed for p in predicted if p is not None)
    assert freed == exclusive["team/worker"] + exclusive["tools/multi"]


def test_deletes_disabled_said_plainly(
    tmp_path: Path, make_window: WindowFactory, qtbot: QtBot
) -> None:
    server = DistributionServer(tmp_path / "ro", delete_enabled=False).start()
    try:
        with server.http_client() as http:
            push_image(http, "team/app", APP1, "v1")
            push_image(http, "team/app", APP1, "latest")
        window = make_window()
        connect(window, qtbot, server)
        banner = window.oci.banner
        assert banner.isVisible()
        assert "deletes turned off" in banner.label.text()
        assert window.oci.status.text().startswith("OCI registry: catalog · deletes off")
        open_image(window, qtbot, (server.host,), "team/app")
        select_image(window, qtbot, "team/app")
        window.browse.tags.select_keys(["v1"], current="v1")
        for action in (window.acts.delete_tags, window.acts.delete_image):
            assert not action.isEnabled()
            assert "turned off" in action.toolTip()
        # The bypass (Delete pressed anyway) does nothing: the action is disabled.
        assert window.browsing.delete_selected_tags() is None

        # A scan can be cancelled; nothing is left running and no figures are made up.
        storage = window.oci_storage
        storage.start_scan()
        assert not storage.cancel_button.isHidden()
        storage.cancel_button.click()
        wait_idle(qtbot, window)
        assert storage.status.text() == "Scan cancelled"
        assert isinstance(window.backend, OciBackend)
        assert window.backend.last_scan is None
        assert storage.referenced.bytes is None
        storage.start_scan()
        wait_idle(qtbot, window)
        assert storage.referenced.bytes == sum(APP1.reachable().values())
    finally:
        server.stop()
