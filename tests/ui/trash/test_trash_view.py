"""Recently deleted, as a person uses it: the tab opened on a repository, the rows
filtered, dragged over and restored (a result per entry; a name pushed again since is
refused with the server's message), and the trash emptied by an admin after a
confirmation that says what GC will free; greyed with the reason for a writer.
Checked against what the registry then holds."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from app.core.units import format_bytes
from app.ui.trash import model as trash_model
from tests.support import gui, oci
from tests.support.api import api
from tests.support.registry import RegistryServer
from tests.ui.flows.conftest import WAIT_MS, Launch
from tests.ui.seed import seed_image

NAME = "acme/web/frontend"
WEEK = 7 * 24 * 3600.0


def delete_elsewhere(registry: RegistryServer, tag: str) -> None:
    """Someone else deletes ``tag`` through /v2/ (by tag)."""
    with registry.client("root") as c:
        r = c.delete(f"/v2/{NAME}/manifests/{tag}")
        assert r.status_code == 202, r.text


def push_tag(registry: RegistryServer, tag: str, image: oci.Image) -> None:
    with registry.client("root") as c:
        r = c.put(
            f"/v2/{NAME}/manifests/{tag}",
            content=image.manifest.data,
            headers={"Content-Type": image.manifest.media_type},
        )
        assert r.status_code == 201, r.text


def tag_digests(registry: RegistryServer) -> dict[str, str]:
    with registry.client("root") as c:
        out = {}
        for tag in c.get(f"/v2/{NAME}/tags/list").json().get("tags") or []:
            r = c.head(
                f"/v2/{NAME}/manifests/{tag}",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
            )
            out[tag] = r.headers["Docker-Content-Digest"]
        return out


def trash(registry: RegistryServer) -> list[dict[str, Any]]:
    with api(registry) as c:
        r = c.get("/workspaces/acme/trash", params={"repository": "web", "limit": 1000})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])


def open_trash(qtbot: QtBot, window: Any) -> Any:
    gui.open_tree_path(qtbot, window.navigator.tree, ["acme", "PLAT", "web"])
    tree = window.navigator.tree
    gui.click_index(qtbot, tree, gui.tree_index(tree, ["acme", "PLAT", "web"]))
    gui.click_tab(qtbot, window.views, "Recently deleted")
    view = window.trash
    qtbot.waitUntil(lambda: view.title.text() == "Recently deleted in acme/web", timeout=WAIT_MS)
    return view


def test_filter_drag_select_restore_and_a_reused_name_refused(
    registry_factory: Any, launch: Launch, qtbot: QtBot
) -> None:
    registry = registry_factory(trash_retention=WEEK)
    images = seed_image(registry, NAME, ["v1", "v2", "v3", "keep"], variants=4)
    before = tag_digests(registry)
    for tag in ("v1", "v2", "v3"):
        delete_elsewhere(registry, tag)
    push_tag(registry, "v3", images[3])  # v3's name is taken again, on another digest

    window = launch(registry)
    view = open_trash(qtbot, window)
    table = view.view
    qtbot.waitUntil(lambda: gui.model_rows(table) == 3, timeout=WAIT_MS)
    assert sorted(gui.texts(table)) == [f"{NAME}:v1", f"{NAME}:v2", f"{NAME}:v3"]
    row = gui.row_texts(table, 0)
    assert row[trash_model.BY] == "root"
    assert row[trash_model.HOW] == "tag deleted"
    assert not view.restore_button.isEnabled()

    # The filter narrows the rows; cleared, all are back.
    gui.type_text(qtbot, view.filter, "v2")
    qtbot.waitUntil(lambda: gui.texts(table) == [f"{NAME}:v2"], timeout=WAIT_MS)
    assert gui.row_texts(table, 0)[trash_model.CHANGE].startswith("v2 → sha256:")
    gui.replace_text(qtbot, view.filter, "")
    qtbot.waitUntil(lambda: gui.model_rows(table) == 3, timeout=WAIT_MS)

    gui.drag_rows(qtbot, table, 0, 2)
    assert len(gui.selected_texts(table)) == 3
    assert view.restore_button.isEnabled()
    gui.click_button(qtbot, view.restore_button)
    qtbot.waitUntil(lambda: view.results.isVisible(), timeout=WAIT_MS)
    lines = sorted(view.results.toPlainText().splitlines())
    assert lines[0] == f"{NAME}:v1: restored"
    assert lines[1] == f"{NAME}:v2: restored"
    assert lines[2].startswith(f"{NAME}:v3: not restored: ")
    refused = [e for e in trash(registry) if e["tag"] == "v3"]
    assert len(refused) == 1  # the server kept it, and said why
    assert "v3" in lines[2]
    # What the server holds: v1 and v2 back on their old digests, v3 on its new one.
    now = tag_digests(registry)
    assert now["v1"] == before["v1"]
    assert now["v2"] == before["v2"]
    assert now["v3"] == images[3].digest != before["v3"]
    qtbot.waitUntil(lambda: gui.texts(table) == [f"{NAME}:v3"], timeout=WAIT_MS)


def trash_with_two_deletes(registry_factory: Any) -> tuple[RegistryServer, int]:
    """A registry with its trash on, v1 and v2 of frontend deleted by someone else;
    and the bytes the server says the repository's trash holds."""
    registry = registry_factory(trash_retention=WEEK)
    seed_image(registry, NAME, ["v1", "v2", "keep"], variants=3)
    for tag in ("v1", "v2"):
        delete_elsewhere(registry, tag)
    with api(registry) as c:
        held = c.get("/workspaces/acme/storage").json()
    in_trash = next(r for r in held["repositories"] if r["slug"] == "web")["in_trash"]
    assert in_trash > 0
    return registry, int(in_trash)


def test_empty_trash_is_greyed_for_a_writer_with_the_reason(
    registry_factory: Any, launch: Launch, qtbot: QtBot
) -> None:
    registry, _ = trash_with_two_deletes(registry_factory)
    window = launch(registry, "writer")
    view = open_trash(qtbot, window)
    qtbot.waitUntil(lambda: gui.model_rows(view.view) == 2, timeout=WAIT_MS)
    reason = "Emptying the trash needs admin permission on acme/web"
    qtbot.waitUntil(lambda: view.empty_button.toolTip() == reason, timeout=WAIT_MS)
    assert not view.empty_button.isEnabled()
    assert len(trash(registry)) == 2


def test_empty_trash_says_what_gc_will_free_then_empties(
    registry_factory: Any, launch: Launch, qtbot: QtBot
) -> None:
    registry, in_trash = trash_with_two_deletes(registry_factory)
    window = launch(registry, "admin")
    view = open_trash(qtbot, window)
    qtbot.waitUntil(lambda: gui.model_rows(view.view) == 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: view.empty_button.isEnabled(), timeout=WAIT_MS)
    # Cancel first: nothing goes.
    gui.click_button(qtbot, view.empty_button)
    box = gui.wait_dialog(qtbot, QMessageBox)
    text = box.text()
    assert "2 entries can no longer be restored" in text
    assert f"garbage collection will then free {format_bytes(in_trash)}" in text
    gui.click_dialog_button(qtbot, box, "Cancel")
    gui.gone(qtbot, box)
    assert len(trash(registry)) == 2
    gui.click_button(qtbot, view.empty_button)
    box = gui.wait_dialog(qtbot, QMessageBox)
    gui.click_dialog_button(qtbot, box, "Empty trash")
    gui.gone(qtbot, box)
    qtbot.waitUntil(lambda: gui.model_rows(view.view) == 0, timeout=WAIT_MS)
    assert trash(registry) == []
    assert not view.empty_button.isEnabled()
