"""Actions mirror the server's permissions: disabled, with a tooltip naming the
permission and the repository."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from tests.support.registry import RegistryServer
from tests.ui.conftest import WindowFactory, wait_idle
from tests.ui.seed import seed_image
from tests.ui.test_delete import NAME, open_image


def test_read_only_user_cannot_delete_tags_or_the_image(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, ["v1", "v2"])
    window = make_window(registry, user="reader")
    open_image(window, qtbot)
    window.browse.tags.view.selectAll()
    acts = window.acts
    assert acts.copy_pull.isEnabled()
    assert acts.copy_digest.isEnabled()
    assert not acts.delete_tags.isEnabled()
    assert acts.delete_tags.toolTip() == (
        "Deleting tags needs write permission on acme/web; you have read permission there."
    )
    assert not acts.delete_image.isEnabled()
    assert "needs admin permission on acme/web; you have read" in acts.delete_image.toolTip()


def test_write_only_user_deletes_tags_but_not_the_image(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, ["v1", "v2"])
    window = make_window(registry, user="writer")
    open_image(window, qtbot)
    window.browse.tags.select_keys(["v1"], current="v1")
    acts = window.acts
    assert acts.delete_tags.isEnabled()
    assert acts.delete_tags.text() == "&Delete tag…"
    assert not acts.delete_image.isEnabled()
    assert acts.delete_image.toolTip() == (
        "Deleting an image needs admin permission on acme/web; you have write permission there."
    )
    # The context menu is built from the same actions, so it agrees.
    assert acts.delete_image in window.browse.tags.view.actions()
    assert acts.delete_tags in window.browse.tags.view.actions()


def test_repository_admin_may_delete_the_image(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, ["v1"])
    window = make_window(registry, user="admin")
    open_image(window, qtbot)
    wait_idle(qtbot, window)
    assert window.acts.delete_image.isEnabled()
    assert window.acts.delete_image.toolTip() == "Delete the image with all of its tags"
