"""Berth's own registry through the "OCI registry" connection kind: the bearer
token challenge flow (realm, service, scope), the tree from its catalog grouped
by path segment, tags filling in, and a tag delete with the OCI tag delete (the
registry supports it, so there is no choice to make: the other tag stays)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from app.client.auth import RegistryAuth
from app.client.profiles import Profile
from app.ui.backends.deletion import DeletePlan
from app.ui.backends.oci import OciBackend
from app.ui.browse.images_model import PROJECT
from app.ui.common import confirm_delete
from tests.support import oci
from tests.support.gc_checks import http_pull
from tests.support.registry import PASSWORD, RegistryServer
from tests.ui.conftest import WindowFactory, wait_idle
from tests.ui.seed import server_tags

APP = oci.image([oci.random_layer(30_000, "oci-berth-base"), oci.random_layer(5_000, "app")])
WORKER = oci.image([oci.random_layer(30_000, "oci-berth-base"), oci.random_layer(4_000, "w")])


def test_token_flow_browse_and_tag_delete(
    registry: RegistryServer,
    make_window: WindowFactory,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with registry.client("root") as http:
        oci.push(http, "acme/web/app", APP, "v1")
        oci.push(http, "acme/web/app", APP, "v2")
        oci.push(http, "acme/api/worker", WORKER, "1.0")
    window = make_window()
    window.open_profile(Profile("berth-oci", registry.url, "wsadmin", kind="oci"), PASSWORD)
    wait_idle(qtbot, window)
    backend = window.backend
    assert isinstance(backend, OciBackend), window.error_bar.text
    auth = backend.client.http.auth
    assert isinstance(auth, RegistryAuth)
    assert auth.scheme == "bearer"
    assert auth.token_requests > 0
    assert window.browse.images.view.isColumnHidden(PROJECT)  # no projects there

    # Berth names are workspace/repository/image: namespaces acme, then its repositories.
    host = registry.host
    root = window.navigator.nav_model.root.children[0]
    assert root.name == host
    assert [c.name for c in root.children] == ["acme"]
    acme = root.children[0]
    window.navigator.tree.expand(
        window.navigator.nav_proxy.mapFromSource(window.navigator.nav_model.index_of(acme))
    )
    wait_idle(qtbot, window)
    assert [c.name for c in acme.children] == ["api", "web"]

    # Berth deletes tags one by one and has a referrers API: nothing to warn about.
    assert not window.oci.banner.isVisible()
    assert window.oci.status.text() == "OCI registry: catalog · tag deletes · referrers"

    assert window.navigator.select_path((host, "acme", "web"))
    qtbot.waitUntil(lambda: window.browse.images_model.rowCount() == 1)
    image = window.browse.images_model.rows[0]
    assert image.full_name == "acme/web/app"
    window.browse.images.select_keys([image.id], current=image.id)
    qtbot.waitUntil(lambda: window.browse.tags_model.rowCount() == 2)
    wait_idle(qtbot, window)
    rows = {t.name: t for t in window.browse.tags_model.rows}
    assert rows["v1"].digest == rows["v2"].digest == APP.digest
    assert rows["v1"].size == APP.compressed_size
    assert rows["v1"].other_tags == ("v2",)
    assert window.browse.images_model.rows[0].tag_count == 2

    shown: list[tuple[DeletePlan, Any]] = []

    async def confirm(parent: Any, plan: DeletePlan, impact: Any, error: Any = None) -> bool:
        shown.append((plan, error))
        return True

    async def no_choice(*_: Any) -> None:
        raise AssertionError("a registry with tag deletes offers no choice")

    monkeypatch.setattr(confirm_delete, "confirm_delete", confirm)
    monkeypatch.setattr(confirm_delete, "choose_delete_method", no_choice)
    window.browse.tags.select_keys(["v1"], current="v1")
    window.browsing.delete_selected_tags()
    wait_idle(qtbot, window)
    plan, error = shown[0]
    assert plan.names == ["v1"]
    assert plan.staying == {APP.digest: ["v2"]}
    assert error is not None  # no scan yet: the dialog says how to see what it frees
    assert "scan" in error
    assert server_tags(registry, "acme/web/app") == {"v2"}
    assert [t.name for t in window.browse.tags_model.rows] == ["v2"]
    with registry.client("root") as http:
        assert http_pull(http, "acme/web/app", "v2") == APP.digest

    # The backend's own bulk call (what a generic caller uses) deletes exactly those.
    task = asyncio.get_event_loop().create_task(backend.delete_tags(image, ["v2", "v1"]))
    qtbot.waitUntil(task.done)
    assert {(r.tag, r.status) for r in task.result()} == {("v2", "deleted"), ("v1", "not_found")}
    assert server_tags(registry, "acme/web/app") == set()
    with registry.client("root") as http:
        assert http.get("/v2/acme/api/worker/manifests/1.0").status_code == 200

    # One Storage tab at a time: the scanned one here, the Berth view for a Berth kind.
    views = window.views
    assert views.isTabVisible(views.indexOf(window.oci_storage))
    assert not views.isTabVisible(views.indexOf(window.storage))
    window.open_profile(Profile("berth", registry.url, "wsadmin"), PASSWORD)
    wait_idle(qtbot, window)
    assert window.backend is not None
    assert not isinstance(window.backend, OciBackend)
    assert views.indexOf(window.oci_storage) < 0
    assert views.isTabVisible(views.indexOf(window.storage))
    assert window.oci.status.isHidden()
    assert not window.oci.repositories_action.isVisible()
    assert window.navigator.tree_filter.placeholderText().startswith("Filter workspaces")
    assert not window.browse.images.view.isColumnHidden(PROJECT)
