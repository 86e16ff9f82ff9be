"""Render the main window (with a selection), the delete confirmation, the
connection dialog and the storage view (light and dark, after the confirmed delete,
so GC has something pending) to PNGs, against demo data in a real registry; then the same
window on an "OCI registry" connection to a CNCF Distribution 2.8 (browse, the
storage scan, the confirmation that offers the safe path for a shared digest).

    xvfb-run -a .venv/bin/python -m tests.support.screenshots resources/screenshots

Uses ``berth-registry demo`` when the registry has it; otherwise seeds sample
workspaces itself (images that share layers, many tags).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import qasync
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from app.client.berth_api import Tag
from app.client.credentials import CredentialStore
from app.client.embedded import EmbeddedRegistry
from app.client.profiles import Profile
from app.ui.backends.deletion import DeletePlan
from app.ui.backends.oci import OciBackend
from app.ui.common.confirm_delete import ConfirmDeleteDialog
from app.ui.common.settings import Settings
from app.ui.connections.dialog import ConnectionsDialog
from app.ui.main_window import MainWindow
from app.ui.oci.controller import delete_methods
from tests.support import oci
from tests.support.distribution import PASSWORD as DIST_PASSWORD
from tests.support.distribution import USER as DIST_USER
from tests.support.distribution import DistributionServer, push_image
from tests.support.keyrings import MemoryKeyring
from tests.support.registry import CLI, PASSWORD, RegistryServer, standard_registry


def _has_demo() -> bool:
    result = subprocess.run([CLI, "demo", "--help"], capture_output=True, check=False)
    return result.returncode == 0


def seed(server: RegistryServer) -> None:
    from tests.ui.seed import seed_image

    base = oci.random_layer(180_000, seed="debian-base")
    runtime = oci.random_layer(90_000, seed="python-runtime")
    seed_image(server, "acme/web/frontend",
               [f"v2.{m}.{p}" for m in range(4) for p in range(6)] + ["latest", "stable"],
               variants=9, shared=base, layer_size=60_000)  # fmt: skip
    seed_image(server, "acme/web/admin-console", ["v1.0.0", "v1.1.0", "latest"],
               variants=2, shared=base)  # fmt: skip
    seed_image(server, "acme/api/worker", [f"build-{i}" for i in range(40)], variants=8,
               shared=runtime)  # fmt: skip
    seed_image(server, "acme/api/gateway", ["1.0", "1.1", "2.0"], variants=3, shared=runtime)
    seed_image(server, "globex/tools/cli", ["0.9", "1.0"], variants=2, shared=base)


async def until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110  (polling the window's state is fine here)
        await asyncio.sleep(0.1)


def grab(widget: QWidget, path: Path) -> None:
    QApplication.processEvents()
    pixmap = widget.grab()
    pixmap.save(str(path))
    print(f"wrote {path} ({pixmap.width()}x{pixmap.height()})")


async def render(out: Path, tmp: Path) -> None:
    store = CredentialStore(backend=MemoryKeyring())
    window = MainWindow(Settings.at(tmp / "settings.ini"), store)
    window.resize(QSize(1360, 820))
    window.show()
    server: RegistryServer | None = None
    embedded: EmbeddedRegistry | None = None
    try:
        if _has_demo():
            embedded = EmbeddedRegistry(tmp / "demo", store=store, demo=True)
            window.use_embedded(embedded)
        else:
            server = standard_registry(tmp / "registry").start()
            await asyncio.to_thread(seed, server)
            window.open_profile(Profile("Demo", server.url, "root"), PASSWORD)
        await until(lambda: window.backend is not None and not window.ops.busy)
        if embedded is not None:
            # The demo is seeded beside its running registry: the pictures show all of it.
            demo = embedded
            await until(lambda: demo.seeding is None)
            if demo.seed_error:
                raise SystemExit(f"the demo's seeding failed: {demo.seed_error}")
            window.refresh()
            await until(lambda: not window.ops.busy)
        acme = window.navigator.nav_model.find(("acme",))
        if acme is not None:
            window.navigator.tree.expand(
                window.navigator.nav_proxy.mapFromSource(window.navigator.nav_model.index_of(acme))
            )
        window.navigator.select_path(("acme",))
        await until(lambda: not window.ops.busy and window.browse.images_model.rowCount() > 0)
        images = window.browse.images_model
        first = max(images.rows, key=lambda i: i.tag_count)
        window.browse.images.select_keys([first.id], current=first.id)
        await until(lambda: not window.ops.busy and window.browse.tags_model.rowCount() > 0)
        tags = window.browse.tags
        tags.view.sortByColumn(0, tags.view.horizontalHeader().sortIndicatorOrder())
        names = [tags.proxy.index(r, 0).data() for r in range(3, 8)]
        tags.select_keys(names, current=names[0])
        tags.view.setFocus()
        await until(lambda: not window.ops.busy)
        await asyncio.sleep(0.3)
        grab(window, out / "main-window.png")

        assert window.backend is not None
        assert window.browsing.image is not None
        selected = tags.selected()
        plan = DeletePlan(window.browsing.image, tuple(selected))
        impact = await window.backend.delete_impact(
            window.browsing.image.workspace,
            tags=[(window.browsing.image, t.name) for t in selected],
        )
        dialog = ConfirmDeleteDialog(plan, impact, None, window)
        dialog.show()
        await asyncio.sleep(0.3)
        grab(dialog, out / "delete-confirmation.png")
        dialog.reject()

        profiles = [
            Profile("Production", "https://registry.acme.example", "alice"),
            Profile(
                "Staging (Distribution)",
                "https://staging.acme.example:5000",
                "ci",
                kind="oci",
                ca_bundle="/etc/ssl/acme-staging-ca.pem",
            ),
        ]
        connections = ConnectionsDialog(profiles, store, "Production", window)
        connections.show()
        connections.start_test()
        await asyncio.sleep(2.0)
        grab(connections, out / "connection-dialog.png")
        connections.reject()

        await render_storage(window, out, selected)
    finally:
        await window.ops.drain()
        if window.backend is not None:
            await window.backend.aclose()
            window.backend = None
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        if server is not None:
            server.stop()


def dark_palette() -> QPalette:
    """A dark palette as a desktop's dark theme gives Qt (Fusion colours)."""
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2b2b",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1f1f1f",
        QPalette.ColorRole.AlternateBase: "#272727",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#353535",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.Highlight: "#3d6fb4",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#333333",
        QPalette.ColorRole.ToolTipText: "#e6e6e6",
        QPalette.ColorRole.PlaceholderText: "#8a8a8a",
        QPalette.ColorRole.Mid: "#444444",
        QPalette.ColorRole.Dark: "#1a1a1a",
        QPalette.ColorRole.Light: "#4a4a4a",
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#8a8a8a"))
    return palette


async def render_storage(window: MainWindow, out: Path, tags: list[Tag]) -> None:
    """The storage view of acme once the tags the confirmation showed are deleted:
    pending GC holds what it promised, until the demo's short review delay ends."""
    backend, image = window.backend, window.browsing.image
    assert backend is not None
    assert image is not None
    view = window.storage
    window.views.setCurrentWidget(view)
    await until(lambda: view.storage is not None and not window.ops.busy)
    before = view.refreshes
    await backend.delete_tags(image, [t.name for t in tags])
    # The event stream brings the new figures; GC has not run yet (review delay).
    await until(lambda: view.refreshes > before and not window.ops.busy)
    await asyncio.sleep(0.5)
    grab(window, out / "storage-view.png")
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    light = app.palette()
    app.setPalette(dark_palette())
    await asyncio.sleep(0.3)
    grab(window, out / "storage-view-dark.png")
    app.setPalette(light)
    window.views.setCurrentWidget(window.browse)


def seed_distribution(server: DistributionServer) -> None:
    """Images under a few namespaces that share a base layer, tags that share
    digests (releases also tagged latest/stable), and a two-platform index."""
    base = oci.random_layer(900_000, seed="debian-base")
    runtime = oci.random_layer(400_000, seed="python-runtime")
    content: dict[str, dict[str, oci.Image]] = {}
    for name, layers, versions in (
        ("team/app", [base, runtime], 6),
        ("team/worker", [base, runtime], 3),
        ("team/web/frontend", [base], 4),
        ("library/nginx", [base], 2),
    ):
        tags: dict[str, oci.Image] = {}
        for v in range(versions):
            own = oci.random_layer(60_000 + 7_000 * v, seed=f"{name}-{v}")
            tags[f"1.{v}.0"] = oci.image(
                [*layers, own], created=f"2026-0{1 + v % 9}-1{v}T09:30:00Z", label=name
            )
        tags["latest"] = tags["stable"] = tags[f"1.{versions - 1}.0"]
        content[name] = tags
    amd = oci.image([base, oci.random_layer(50_000, seed="cli-amd64")])
    arm = oci.image([oci.random_layer(50_000, seed="cli-arm64")], arch="arm64")
    content["tools/cli"] = {"2.0": oci.index([amd, arm])}
    with server.http_client() as http:
        for name, tags in content.items():
            for tag, img in tags.items():
                push_image(http, name, img, tag)


async def render_oci(out: Path, tmp: Path) -> None:
    store = CredentialStore(backend=MemoryKeyring())
    window = MainWindow(Settings.at(tmp / "oci-settings.ini"), store)
    window.resize(QSize(1360, 820))
    window.show()
    server = DistributionServer(tmp / "distribution")
    try:
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(seed_distribution, server)
        profile = Profile(
            "Staging (Distribution)", server.url, DIST_USER, kind="oci",
            ca_bundle=str(server.ca_file),
        )  # fmt: skip
        window.open_profile(profile, DIST_PASSWORD)
        await until(lambda: window.backend is not None and not window.ops.busy)
        backend = window.backend
        assert isinstance(backend, OciBackend)
        team = window.navigator.nav_model.find((server.host, "team"))
        assert team is not None
        window.navigator.tree.expand(
            window.navigator.nav_proxy.mapFromSource(window.navigator.nav_model.index_of(team))
        )
        window.navigator.select_path((server.host, "team"))
        await until(lambda: not window.ops.busy and window.browse.images_model.rowCount() > 0)
        window.oci_storage.start_scan()
        await until(lambda: not window.ops.busy)
        app = next(i for i in window.browse.images_model.rows if i.full_name == "team/app")
        window.browse.images.select_keys([app.id], current=app.id)
        await until(lambda: not window.ops.busy and window.browse.tags_model.rowCount() > 0)
        tags = window.browse.tags
        tags.view.sortByColumn(0, tags.view.horizontalHeader().sortIndicatorOrder())
        tags.select_keys(["1.5.0"], current="1.5.0")
        tags.view.setFocus()
        await until(lambda: not window.ops.busy)
        await asyncio.sleep(0.3)
        grab(window, out / "oci-window.png")

        window.views.setCurrentWidget(window.oci_storage)
        await asyncio.sleep(0.3)
        grab(window, out / "oci-storage.png")
        window.views.setCurrentWidget(window.browse)

        assert window.browsing.image is not None
        prepared = await backend.prepare_tag_delete(window.browsing.image, ["1.5.0"])
        note, error = window.oci._storage_note(backend)
        plan = DeletePlan(
            window.browsing.image,
            prepared.tags,
            methods=delete_methods(prepared, prepared.deletion),
            storage_note=note,
        )
        dialog = ConfirmDeleteDialog(plan, None, error, window)
        dialog.show()
        await asyncio.sleep(0.3)
        grab(dialog, out / "oci-delete-confirmation.png")
        dialog.reject()
    finally:
        await window.ops.drain()
        if window.backend is not None:
            await window.backend.aclose()
            window.backend = None
        await asyncio.to_thread(server.stop)


async def close_window(window: MainWindow) -> None:
    """After a render: the window's work drained and its connection closed."""
    await window.ops.drain()
    if window.backend is not None:
        await window.backend.aclose()
        window.backend = None


def render_all(argv: list[str], *renders: Callable[[Path, Path], Awaitable[None]]) -> int:
    """Run each ``render(out, tmp)`` on one qasync loop; ``out`` is argv[0] (default
    resources/screenshots), ``tmp`` a directory removed afterwards."""
    out = Path(argv[0] if argv else "resources/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp, loop:
        for render_one in renders:
            loop.run_until_complete(render_one(out, Path(tmp)))
    del app
    return 0


def main(argv: list[str]) -> int:
    return render_all(argv, render, render_oci)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
