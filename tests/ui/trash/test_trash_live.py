"""Recently deleted follows the workspace's event stream: a delete made elsewhere
(the API, /v2/) shows up without a refresh, and entries someone else restores or
empties leave; the rows the user selected stay selected meanwhile."""

from __future__ import annotations

from typing import Any

from pytestqt.qtbot import QtBot

from tests.support import gui
from tests.support.api import api, as_listed
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch
from tests.ui.flows.test_delete_flow import image_rows
from tests.ui.seed import seed_image, server_tags
from tests.ui.trash.test_trash_view import NAME, WEEK, delete_elsewhere, open_trash, trash


def delete_v2_and_backend(registry: RegistryServer) -> None:
    """Someone else deletes frontend's v2 and the whole backend image (API, as admin)."""
    frontend = image_rows(registry)["frontend"]["id"]
    backend = image_rows(registry)["backend"]["id"]
    with api(registry, "admin") as c:
        r = c.delete(f"/images/{frontend}/tags/v2", headers=as_listed(c, frontend))
        assert r.status_code == 204, r.text
        r = c.delete(f"/images/{backend}", headers=as_listed(c, backend))
        assert r.status_code == 204, r.text


def test_deletes_restores_and_empties_made_elsewhere_reach_the_view(
    registry_factory: Any, launch: Launch, qtbot: QtBot
) -> None:
    registry = registry_factory(trash_retention=WEEK)
    seed_image(registry, NAME, ["v1", "v2", "v3"], variants=3)
    seed_image(registry, "acme/web/backend", ["v1"])
    delete_elsewhere(registry, "v1")
    window = launch(registry)
    view = open_trash(qtbot, window)
    table = view.view
    qtbot.waitUntil(lambda: gui.texts(table) == [f"{NAME}:v1"], timeout=WAIT_MS)
    # The stream is open (the storage view's "Live" says so): what follows is pushed.
    qtbot.waitUntil(lambda: "Live" in window.storage.live.text(), timeout=WAIT_MS)
    gui.click_row(qtbot, table, f"{NAME}:v1")
    assert gui.selected_texts(table) == [f"{NAME}:v1"]

    # Deleted elsewhere: a tag through the management API, an image too.
    delete_v2_and_backend(registry)
    shown = [
        "acme/web/backend (image, 1 tag)",
        f"{NAME}:v2",
        f"{NAME}:v1",
    ]
    qtbot.waitUntil(lambda: gui.texts(table) == shown, timeout=WAIT_MS)
    assert sorted(gui.texts(table)) == sorted(
        e["image"] + (f":{e['tag']}" if e["kind"] == "tag" else " (image, 1 tag)")
        for e in trash(registry)
    )
    assert gui.selected_texts(table) == [f"{NAME}:v1"]  # the user's selection stayed

    # Someone else restores v1: its row leaves, the others stay.
    v1 = next(e["id"] for e in trash(registry) if e["tag"] == "v1")
    with api(registry, "admin") as c:
        r = c.post("/workspaces/acme/trash/restore", json={"entries": [{"id": v1}]})
        assert r.status_code == 200, r.text
    qtbot.waitUntil(lambda: gui.texts(table) == shown[:2], timeout=WAIT_MS)
    assert "v1" in server_tags(registry, NAME)

    # Someone else empties the trash: the view is empty, and says nothing is left to empty.
    with api(registry, "admin") as c:
        r = c.post("/workspaces/acme/trash/empty", json={"all": True})
        assert r.status_code == 200, r.text
    qtbot.waitUntil(lambda: gui.model_rows(table) == 0, timeout=WAIT_MS)
    assert trash(registry) == []
    qtbot.waitUntil(lambda: view.empty_button.toolTip() == "Nothing to empty", timeout=WAIT_MS)


def test_restores_made_elsewhere_reach_browse(
    registry_factory: Any, launch: Launch, qtbot: QtBot
) -> None:
    """Someone else restores a tag of the image the user is looking at, and a whole
    image: the tags table, the images table and the tree's counts follow, no F5."""
    registry = registry_factory(trash_retention=WEEK)
    seed_image(registry, NAME, ["v1", "v2", "v3"], variants=3)
    seed_image(registry, "acme/web/backend", ["v1"])
    delete_v2_and_backend(registry)
    window = launch(registry)
    tree = window.navigator.tree
    gui.open_tree_path(qtbot, tree, ["acme", "PLAT", "web"])
    images, tags = window.browse.images.view, window.browse.tags.view
    gui.wait_row(qtbot, images, "frontend")
    gui.click_row(qtbot, images, "frontend")
    qtbot.waitUntil(lambda: sorted(gui.texts(tags)) == ["v1", "v3"], timeout=WAIT_MS)
    assert gui.texts(images) == ["frontend"]
    qtbot.waitUntil(lambda: "Live" in window.storage.live.text(), timeout=WAIT_MS)

    entries = {(e["tag"] or e["image"]): e["id"] for e in trash(registry)}
    with api(registry, "admin") as c:
        r = c.post(
            "/workspaces/acme/trash/restore",
            json={"entries": [{"id": entries["v2"]}, {"id": entries["acme/web/backend"]}]},
        )
        assert r.status_code == 200, r.text
    assert server_tags(registry, NAME) >= {"v1", "v2", "v3"}
    qtbot.waitUntil(lambda: sorted(gui.texts(tags)) == ["v1", "v2", "v3"], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: sorted(gui.texts(images)) == ["backend", "frontend"], timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: gui.tree_index(tree, ["acme", "PLAT", "web"]).siblingAtColumn(1).data() == "2",
        timeout=WAIT_MS,
    )
    assert window.browse.tags.title.text() == f"Tags of {NAME}"
