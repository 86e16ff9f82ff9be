"""The Browse tab's tags table says when each tag was last pulled (what the cleanup
rules "keep last pulled" and "remove not pulled for" judge by)."""

from __future__ import annotations

import re
from collections.abc import Callable

from pytestqt.qtbot import QtBot

from app.ui.browse import tags_model
from tests.support import gui, oci
from tests.support.registry import RegistryServer
from tests.ui.conftest import WindowFactory
from tests.ui.seed import seed_image

WAIT_MS = 30_000


def test_last_pull_column_shows_pulls_by_tag(
    registry_factory: Callable[..., RegistryServer], make_window: WindowFactory, qtbot: QtBot
) -> None:
    server = registry_factory(extra_args=["--pull-flush-interval", "1"])
    seed_image(server, "acme/web/frontend", ["pulled", "never"], variants=2)
    with server.client("root") as c:
        r = c.get("/v2/acme/web/frontend/manifests/pulled", headers={"Accept": oci.OCI_MANIFEST})
        assert r.status_code == 200
        image_id = c.get("/api/v1/workspaces/acme/images").json()["items"][0]["id"]

        def noted() -> bool:
            items = c.get(f"/api/v1/images/{image_id}/tags").json()["items"]
            return any(t["name"] == "pulled" and t["last_pulled"] for t in items)

        qtbot.waitUntil(noted, timeout=WAIT_MS)  # written in batches, off the pull's path

    window = make_window(server, "reader")
    gui.open_tree_path(qtbot, window.navigator.tree, ["acme", "PLAT", "web"])
    images = window.browse.images.view
    gui.wait_row(qtbot, images, "frontend")
    gui.click_row(qtbot, images, "frontend")
    tags = window.browse.tags.view
    qtbot.waitUntil(lambda: gui.model_rows(tags) == 2, timeout=WAIT_MS)
    model = tags.model()
    assert model.headerData(tags_model.LAST_PULL, gui.Qt.Orientation.Horizontal) == "Last pull"
    shown = dict(zip(gui.texts(tags, tags_model.TAG), gui.texts(tags, tags_model.LAST_PULL),
                     strict=True))  # fmt: skip
    assert shown["never"] == "—"
    assert re.fullmatch(r"\d+ (s|min) ago", shown["pulled"]), shown
    row = gui.find_row(tags, "pulled", tags_model.TAG).row()
    tip = model.index(row, tags_model.LAST_PULL).data(gui.Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("Pulled by this tag 20"), tip
