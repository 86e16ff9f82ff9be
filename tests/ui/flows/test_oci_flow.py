"""An "OCI registry" connection to a real CNCF Distribution 2.8 (Debian's
docker-registry, TLS, htpasswd), used as a person does: added in the Connections
dialog (kind, URL, CA bundle, user, password), tested, connected; the tree of
path segments opened; an image clicked, its tags filling in; one of two tags on a
digest deleted the safe way picked in the confirmation (the other still pulls); an
image deleted with its typed name; the storage scanned from the Storage tab."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QRadioButton, QTreeView
from pytestqt.qtbot import QtBot

from app.client.profiles import Profile
from app.ui.browse import images_model, tags_model
from app.ui.common.confirm_delete import ConfirmDeleteDialog
from app.ui.connections.dialog import ConnectionsDialog
from tests.support import gui
from tests.support.distribution import PASSWORD, USER, DistributionServer, push_image
from tests.ui.conftest import wait_idle
from tests.ui.flows.conftest import WAIT_MS, Launch
from tests.ui.oci.test_oci_distribution import APP1, PUSHED, expected


def tags_on_server(server: DistributionServer, name: str) -> set[str]:
    with server.http_client() as http:
        return set(http.get(f"/v2/{name}/tags/list").json().get("tags") or [])


def counts(tree: QTreeView, host: str) -> tuple[str, str]:
    """The image counts the tree shows for the registry and its "team" namespace."""
    return tuple(  # type: ignore[return-value]
        str(gui.tree_index(tree, path).siblingAtColumn(1).data())
        for path in ([host], [host, "team"])
    )


def test_connect_browse_delete_safely_and_scan(
    distribution: DistributionServer, launch: Launch, qtbot: QtBot
) -> None:
    assert distribution.ca_file is not None
    window = launch()
    gui.menu_bar_pick(qtbot, window, "Connection", "Connections…")
    dialog = gui.wait_dialog(qtbot, ConnectionsDialog)
    gui.replace_text(qtbot, dialog.name, "dist")
    gui.choose_in_combo(qtbot, dialog.kind, "OCI registry")
    gui.replace_text(qtbot, dialog.url, distribution.url)
    gui.type_text(qtbot, dialog.username, USER)
    gui.type_text(qtbot, dialog.password, PASSWORD)
    gui.type_text(qtbot, dialog.ca_bundle, str(distribution.ca_file))
    gui.click_button(qtbot, dialog.test_button)
    qtbot.waitUntil(lambda: dialog.test_result.text().startswith("✔"), timeout=WAIT_MS)
    assert f"as {USER}; 4 repositories visible." in dialog.test_result.text()
    gui.click_dialog_button(qtbot, dialog, "Connect")
    gui.gone(qtbot, dialog)

    host = distribution.host
    tree = window.navigator.tree
    qtbot.waitUntil(lambda: gui.texts(tree) == [host], timeout=WAIT_MS)
    assert gui.texts(tree, 1) == ["4"]
    banner = window.oci.banner
    assert banner.isVisible()
    assert "only by digest" in banner.label.text()

    # The tree by path segment; "team" lists its three images.
    gui.open_tree_path(qtbot, tree, [host, "team"])
    images = window.browse.images.view
    qtbot.waitUntil(
        lambda: sorted(gui.texts(images)) == ["team/app", "team/web/frontend", "team/worker"],
        timeout=WAIT_MS,
    )
    assert not images.isColumnHidden(images_model.NAME)
    assert images.isColumnHidden(images_model.PROJECT)

    # team/app: its tags list at once and fill in as their manifests are read.
    gui.click_row(qtbot, images, "team/app")
    tags = window.browse.tags.view
    qtbot.waitUntil(lambda: gui.texts(tags) == ["latest", "v1", "v2"], timeout=WAIT_MS)
    v1 = gui.find_row(tags, "v1").row()
    qtbot.waitUntil(lambda: gui.row_texts(tags, v1)[tags_model.SIZE] != "—", timeout=WAIT_MS)
    assert gui.row_texts(tags, v1)[tags_model.OTHER_TAGS] == "latest"
    gui.click_row(qtbot, tags, "v1")
    details = window.browse.details
    qtbot.waitUntil(lambda: details.fields["digest"].text() == APP1.digest, timeout=WAIT_MS)

    # Delete v1: the registry deletes by digest, which latest shares; the dialog
    # offers the safe way first, and it is the one taken.
    gui.key(qtbot, window, Qt.Key.Key_Delete)
    confirm = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    radios = [r for r in confirm.findChildren(QRadioButton) if r.isVisible()]
    assert len(radios) == 2
    assert radios[0].isChecked()
    assert "latest" in gui.shown_text(confirm)
    # A plain OCI registry keeps no trash: the delete is final, and said so.
    assert "This is permanent. Deleted tags cannot be pulled again, and cannot be restored." in (
        gui.shown_text(confirm)
    )
    assert "restored until" not in gui.shown_text(confirm)
    # Choosing the digest way says latest goes too; back to the safe way.
    gui.click(qtbot, radios[1])
    assert "Also deleted: 1 other tag on the same manifest: latest" in gui.shown_text(confirm)
    gui.click(qtbot, radios[0])
    assert "Also deleted" not in gui.shown_text(confirm)
    gui.click_dialog_button(qtbot, confirm, "Delete")
    gui.gone(qtbot, confirm)
    qtbot.waitUntil(lambda: gui.texts(tags) == ["latest", "v2"], timeout=WAIT_MS)
    assert tags_on_server(distribution, "team/app") == {"latest", "v2"}

    # Delete team/worker, its name typed to confirm.
    gui.click_row(qtbot, images, "team/worker")
    qtbot.waitUntil(lambda: sorted(gui.texts(tags)) == ["1.0", "1.1"], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.acts.delete_image.isEnabled(), timeout=WAIT_MS)
    gui.key(qtbot, window, Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier)
    confirm = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    assert "all 2 of its tags" in gui.shown_text(confirm)
    prompt = re.search(r"Type the image name (\S+) to confirm", gui.shown_text(confirm))
    assert prompt is not None
    assert confirm.typed is not None
    gui.type_text(qtbot, confirm.typed, prompt.group(1))
    gui.click_dialog_button(qtbot, confirm, "Delete image")
    gui.gone(qtbot, confirm)
    qtbot.waitUntil(
        lambda: sorted(gui.texts(images)) == ["team/app", "team/web/frontend"], timeout=WAIT_MS
    )
    assert tags_on_server(distribution, "team/worker") == set()
    # Distribution still lists team/worker in its catalog: the row and the tree's
    # counts stay as they are now, also after a refresh.
    qtbot.waitUntil(lambda: counts(tree, host) == ("3", "2"), timeout=WAIT_MS)
    gui.key(qtbot, window, Qt.Key.Key_F5)
    wait_idle(qtbot, window)
    assert sorted(gui.texts(images)) == ["team/app", "team/web/frontend"]
    assert counts(tree, host) == ("3", "2")

    # The Storage tab scans the registry's manifests on request.
    gui.click_tab(qtbot, window.views, "Storage")
    storage = window.oci_storage
    gui.click_button(qtbot, storage.scan_button)
    qtbot.waitUntil(lambda: storage.referenced.bytes is not None, timeout=WAIT_MS)
    remaining = {n: t for n, t in PUSHED.items() if n != "team/worker"}
    remaining["team/app"] = {t: i for t, i in PUSHED["team/app"].items() if t != "v1"}
    referenced, shared, _exclusive = expected(remaining)
    assert storage.referenced.bytes == referenced
    assert storage.shared.bytes == shared
    assert storage.stored.bytes is None  # not something the OCI API tells


def test_deletes_turned_off_are_said_where_the_actions_are(
    tmp_path: Path, launch: Launch, qtbot: QtBot
) -> None:
    server = DistributionServer(tmp_path / "ro", delete_enabled=False).start()
    try:
        with server.http_client() as http:
            push_image(http, "team/app", APP1, "v1")
            push_image(http, "team/app", APP1, "latest")
        assert server.ca_file is not None
        profile = Profile("ro", server.url, USER, kind="oci", ca_bundle=str(server.ca_file))
        window = launch(profile=profile, secret=PASSWORD)
        assert "deletes turned off" in window.oci.banner.label.text()
        gui.open_tree_path(qtbot, window.navigator.tree, [server.host])
        images = window.browse.images.view
        gui.wait_row(qtbot, images, "team/app")
        gui.click_row(qtbot, images, "team/app")
        tags = window.browse.tags.view
        qtbot.waitUntil(lambda: gui.texts(tags) == ["latest", "v1"], timeout=WAIT_MS)
        gui.click_row(qtbot, tags, "v1")
        menu = gui.right_click_index(qtbot, tags, gui.find_row(tags, "v1"))
        items = dict(gui.menu_items(menu))
        assert items["Delete tag… (deletes are off here)"] is False
        assert items["Delete image… (deletes are off here)"] is False
        gui.close_menu(qtbot, menu)
        gui.key(qtbot, window, Qt.Key.Key_Delete)  # nothing happens
        assert gui.visible_dialogs(ConfirmDeleteDialog) == []
        assert tags_on_server(server, "team/app") == {"latest", "v1"}
    finally:
        server.stop()


def test_repositories_with_nothing_tagged_are_left_out(
    tmp_path: Path, launch: Launch, qtbot: QtBot
) -> None:
    """Distribution keeps listing a repository in its catalog after every manifest in
    it was deleted (by another client here). Such a name is left out of the images
    table and the tree's counts, also after a refresh; a name added by hand stays."""
    server = DistributionServer(tmp_path / "dist").start()
    try:
        with server.http_client() as http:
            push_image(http, "team/app", APP1, "v1")
            digest = push_image(http, "team/gone", APP1, "v1")
            assert http.delete(f"/v2/team/gone/manifests/{digest}").status_code == 202
            assert "team/gone" in http.get("/v2/_catalog").json()["repositories"]
        assert server.ca_file is not None
        profile = Profile(
            "dist", server.url, USER, kind="oci", ca_bundle=str(server.ca_file),
            repositories=("team/by-hand",),
        )  # fmt: skip
        window = launch(profile=profile, secret=PASSWORD)
        host = server.host
        tree = window.navigator.tree
        gui.open_tree_path(qtbot, tree, [host, "team"])
        images = window.browse.images.view
        qtbot.waitUntil(
            lambda: sorted(gui.texts(images)) == ["team/app", "team/by-hand"], timeout=WAIT_MS
        )
        # The tree's counts follow: "team" holds two images now, the registry two.
        qtbot.waitUntil(lambda: counts(tree, host) == ("2", "2"), timeout=WAIT_MS)
        gui.key(qtbot, window, Qt.Key.Key_F5)
        wait_idle(qtbot, window)
        assert sorted(gui.texts(images)) == ["team/app", "team/by-hand"]
        assert counts(tree, host) == ("2", "2")
    finally:
        server.stop()
