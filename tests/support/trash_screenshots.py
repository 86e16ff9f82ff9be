"""Render the Recently deleted tab and the status bar's Undo to PNGs, against a real
registry with the trash on (as serve has it by default), seeded over HTTP: tags and
an image deleted by someone else through the API, a tag moved by a push, and then
tags deleted in the window itself, so its Undo is on offer.

    xvfb-run -a .venv/bin/python -m tests.support.trash_screenshots resources/screenshots
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QSize

from app.client.credentials import CredentialStore
from app.client.profiles import Profile
from app.ui.common import confirm_delete
from app.ui.common.settings import Settings
from app.ui.main_window import MainWindow
from tests.support import oci
from tests.support.api import api, as_listed
from tests.support.keyrings import MemoryKeyring
from tests.support.registry import PASSWORD, RegistryServer, standard_registry
from tests.support.screenshots import close_window, grab, render_all, until


def seed(server: RegistryServer) -> None:
    """Images under acme/web, and what others deleted: three tags of frontend (one by
    digest), the whole admin-console image, and latest moved by a push."""
    from tests.ui.seed import seed_image

    base = oci.random_layer(300_000, seed="trash-base")
    frontend = seed_image(server, "acme/web/frontend",
                          [f"v2.{m}.{p}" for m in range(3) for p in range(4)] + ["latest"],
                          variants=13, shared=base, layer_size=70_000)  # fmt: skip
    seed_image(server, "acme/web/admin-console", [f"build-{i}" for i in range(6)], variants=3,
               shared=base)  # fmt: skip
    with api(server, "admin") as c:
        images = {i["name"]: i["id"] for i in c.get("/workspaces/acme/images").json()["items"]}
        fid = images["frontend"]
        r = c.post(f"/images/{fid}/tags/delete", json={"tags": ["v2.0.0", "v2.0.1"]},
                   headers=as_listed(c, fid))  # fmt: skip
        assert r.status_code == 200, r.text
        aid = images["admin-console"]
        r = c.delete(f"/images/{aid}", headers=as_listed(c, aid))
        assert r.status_code == 204, r.text
    with server.client("root") as client:
        oci.push(client, "acme/web/frontend", frontend[0], "latest")  # latest moves back


async def render(out: Path, tmp: Path) -> None:
    store = CredentialStore(backend=MemoryKeyring())
    window = MainWindow(Settings.at(tmp / "settings.ini"), store)
    window.resize(QSize(1400, 820))
    window.show()
    server = standard_registry(tmp / "registry", trash_retention=None)  # the default: 7 days
    server.start()
    real_confirm = confirm_delete.confirm_delete

    async def confirmed(*_args: Any, **_kw: Any) -> bool:
        return True  # the confirmation has its own picture (make screenshots)

    try:
        await asyncio.to_thread(seed, server)
        window.open_profile(Profile("Demo", server.url, "root"), PASSWORD)
        await until(lambda: window.backend is not None and not window.ops.busy)
        await window.navigator.reveal(("acme", "PLAT", "web"))
        window.navigator.select_path(("acme", "PLAT", "web"))
        await until(lambda: not window.ops.busy and window.browse.images_model.rowCount() > 0)
        images = window.browse.images_model
        frontend = next(i for i in images.rows if i.name == "frontend")
        window.browse.images.select_keys([frontend.id], current=frontend.id)
        await until(lambda: not window.ops.busy and window.browse.tags_model.rowCount() > 0)
        tags = window.browse.tags
        tags.view.sortByColumn(0, tags.view.horizontalHeader().sortIndicatorOrder())
        names = [tags.proxy.index(r, 0).data() for r in range(2, 5)]
        tags.select_keys(names, current=names[0])
        tags.view.setFocus()
        await until(lambda: not window.ops.busy)
        # Deleted in the window: the status bar offers Undo.
        confirm_delete.confirm_delete = confirmed  # type: ignore[assignment]
        window.acts.delete_tags.trigger()
        await until(lambda: window.undo.button.isVisible() and not window.ops.busy)
        await asyncio.sleep(0.5)
        grab(window, out / "undo-delete.png")

        window.views.setCurrentWidget(window.trash)
        view = window.trash
        await until(lambda: view.model.rowCount() >= 6 and not window.ops.busy)
        chosen = [
            r for r in range(view.proxy.rowCount()) if "v2.0" in view.proxy.index(r, 0).data()
        ]
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for row in chosen:
            view.view.selectionModel().select(view.proxy.index(row, 0), flags)
        view.view.setFocus()
        await asyncio.sleep(0.5)
        grab(window, out / "recently-deleted.png")
    finally:
        confirm_delete.confirm_delete = real_confirm  # type: ignore[assignment]
        await close_window(window)
        server.stop()


def main(argv: list[str]) -> int:
    return render_all(argv, render)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
