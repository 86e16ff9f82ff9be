"""Browsing against a real registry: the tree, the images and tags tables, paging,
sorting, filtering and the details pane."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from app.ui.navigator_model import Node
from app.ui.table_model import ObjectRole
from tests.support.registry import RegistryServer
from tests.ui.conftest import WindowFactory, wait_idle
from tests.ui.seed import seed_image


def _tree_children(window, node: Node) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.name for c in node.children]


def test_tree_population_and_navigation(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, "acme/web/frontend", ["v1", "v2"])
    seed_image(registry, "acme/api/worker", ["latest"])
    window = make_window(registry)
    model = window.nav_model
    assert _tree_children(window, model.root) == ["acme", "globex"]
    acme = model.find(("acme",))
    assert acme is not None
    assert acme.count == 2  # images in the workspace
    # Selecting a workspace lists its images; the first workspace is selected on start.
    qtbot.waitUntil(lambda: window.browse.images_model.rowCount() == 2)
    names = sorted(i.name for i in window.browse.images_model.rows)
    assert names == ["frontend", "worker"]

    # Expanding loads projects, then repositories, lazily.
    index = window.nav_proxy.mapFromSource(model.index_of(acme))
    window.tree.expand(index)
    wait_idle(qtbot, window)
    assert _tree_children(window, acme) == ["PLAT"]
    plat = model.find(("acme", "PLAT"))
    assert plat is not None
    window.tree.expand(window.nav_proxy.mapFromSource(model.index_of(plat)))
    wait_idle(qtbot, window)
    assert sorted(_tree_children(window, plat)) == ["api", "web"]
    assert window.select_path(("acme", "PLAT", "web"))
    wait_idle(qtbot, window)
    assert [i.name for i in window.browse.images_model.rows] == ["frontend"]
    assert window.browse.images.title.text() == "Images in acme/web"

    # Selecting the image lists its tags, selecting a tag shows its manifest.
    window.browse.images.select_keys([window.browse.images_model.rows[0].id],
                                     current=window.browse.images_model.rows[0].id)  # fmt: skip
    wait_idle(qtbot, window)
    assert sorted(t.name for t in window.browse.tags_model.rows) == ["v1", "v2"]
    window.browse.tags.select_keys(["v1"], current="v1")
    wait_idle(qtbot, window)
    details = window.browse.details
    assert details.fields["digest"].text().startswith("sha256:")
    assert details.layers_model.rowCount() == 2
    layer = details.layers_model.index(0, 0).data(ObjectRole)
    assert layer.image_count >= 1
    # The pane's size is the tags table's: the manifest with its config and layers.
    v1 = next(t for t in window.browse.tags_model.rows if t.name == "v1")
    assert details.fields["size"].toolTip() == f"{v1.size:,} bytes"
    layers = sum(
        details.layers_model.index(r, 0).data(ObjectRole).size
        for r in range(details.layers_model.rowCount())
    )
    assert v1.size > layers  # and the manifest and config, each counted once
