"""Render the main window (with a selection), the delete confirmation and the
connection dialog to PNGs, against demo data in a real registry.

    xvfb-run -a .venv/bin/python -m tests.support.screenshots resources/screenshots

Uses ``berth-registry demo`` when the registry has it; otherwise seeds sample
workspaces itself (images that share layers, many tags).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import qasync
from PySide6.QtCore import QSize
from PySide6.QtWidgets import QApplication, QWidget

from app.client.credentials import CredentialStore
from app.client.embedded import EmbeddedRegistry
from app.client.profiles import Profile
from app.ui.confirm_delete import ConfirmDeleteDialog
from app.ui.connections_dialog import ConnectionsDialog
from app.ui.deletion import DeletePlan
from app.ui.main_window import MainWindow
from app.ui.settings import Settings
from tests.support import oci
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
        acme = window.nav_model.find(("acme",))
        if acme is not None:
            window.tree.expand(window.nav_proxy.mapFromSource(window.nav_model.index_of(acme)))
        window.select_path(("acme",))
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
        assert window.image is not None
        selected = tags.selected()
        plan = DeletePlan(window.image, tuple(selected))
        impact = await window.backend.delete_impact(
            window.image.workspace, tags=[(window.image, t.name) for t in selected]
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
    finally:
        await window.ops.drain()
        if window.backend is not None:
            await window.backend.aclose()
            window.backend = None
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        if server is not None:
            server.stop()


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "resources/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp, loop:
        loop.run_until_complete(render(out, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
