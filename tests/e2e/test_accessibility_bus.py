"""Berth as a screen reader or an automation tool meets it: the real ``berth`` started
as a user starts it (its last connection saved, no keyring, so it asks for the
password) in an X session whose D-Bus carries the AT-SPI bus; every widget is found
by its role and accessible name on that bus, and every step is a real pointer or
key event (xdotool): log in, click an image, drag across its tags, press Delete,
confirm, and check what the registry then holds. Then quit from the menu."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.client.profiles import Profile
from app.ui.common.settings import Settings
from tests.packaging.smoke import private_env
from tests.support.atspi import Desktop, Node
from tests.support.processes import VENV_BIN
from tests.support.registry import PASSWORD, RegistryServer
from tests.ui.seed import seed_image, server_tags

pytestmark = pytest.mark.e2e

IMAGE = "acme/web/frontend"
TAGS = [f"v1.{n}" for n in range(10)]


@pytest.fixture
def desktop(registry: RegistryServer, tmp_path: Path) -> Iterator[Desktop]:
    seed_image(registry, IMAGE, TAGS, variants=3)
    seed_image(registry, "acme/web/backend", ["latest"])
    home = tmp_path / "home"
    env = private_env(home)
    del env["QT_QPA_PLATFORM"]  # a real X display this time
    profile = Profile(name="acme registry", url=registry.url, username="admin")
    settings = Settings.at(home / ".config" / "berth" / "Berth.conf")
    settings.set_profiles([profile])
    settings.set_last_profile(profile.name)
    settings.sync()
    session = Desktop([str(VENV_BIN / "berth")], env)
    try:
        yield session
    finally:
        session.close()


def rows_of(desktop: Desktop, table: Node) -> list[Node]:
    """The table's first-column cells shown, top to bottom."""
    cells = [c for c in desktop.children(table) if c.role == "table cell" and c.w > 0]
    first = min((c.x for c in cells), default=0)
    return sorted((c for c in cells if c.x == first), key=lambda c: c.y)


def settled_rows(desktop: Desktop, table: Node, names: set[str]) -> list[Node]:
    """The rows once they are exactly ``names`` and stay where they are between two
    looks (a page arriving or a sort moves rows under the pointer)."""

    def settled() -> list[Node] | None:
        first = rows_of(desktop, table)
        if {c.name for c in first} != names or len(first) != len(names):
            return None
        again = rows_of(desktop, table)
        where = [(c.name, c.x, c.y) for c in first]
        return again if [(c.name, c.x, c.y) for c in again] == where else None

    rows: list[Node] = desktop.wait(settled, f"the rows {sorted(names)}")
    return rows


def test_log_in_click_an_image_drag_select_tags_and_delete_them(
    desktop: Desktop, registry: RegistryServer
) -> None:
    started = time.monotonic()
    # No keyring: the app asks for the password of its saved connection.
    login = desktop.wait_one("dialog", "Log in")
    password = desktop.wait_one("password text", "Password or token", within=login)
    desktop.click(password)
    desktop.type(PASSWORD)
    desktop.key("Return")

    images = desktop.wait_one("table", "Images")
    rows = settled_rows(desktop, images, {"backend", "frontend"})
    desktop.click(next(c for c in rows if c.name == "frontend"))

    tags = desktop.wait_one("table", "Tags")
    shown = settled_rows(desktop, tags, set(TAGS))
    names = [c.name for c in shown]
    first, last = 2, 6
    doomed = names[first : last + 1]
    desktop.drag(shown[first], shown[last])
    # What a screen reader announces as selected: exactly the rows dragged over.
    desktop.wait(
        lambda: [c.name for c in rows_of(desktop, tags) if "selected" in c.states] == doomed,
        f"the rows {doomed} selected",
    )
    desktop.key("Delete")

    # The confirmation says what goes, as a screen reader reads it out.
    confirm = desktop.wait_one("dialog", "Confirm delete")
    assert confirm.description == f"Delete {len(doomed)} tags of {IMAGE}?"
    desktop.wait_one("label", f"Delete {len(doomed)} tags of {IMAGE}?", within=confirm)
    desktop.click(desktop.wait_one("push button", "Delete", within=confirm))

    staying = set(TAGS) - set(doomed)
    desktop.wait(lambda: server_tags(registry, IMAGE) == staying, "the registry to hold the rest")
    desktop.wait(
        lambda: sorted(c.name for c in rows_of(desktop, tags)) == sorted(staying),
        "the tags table to show the rest",
    )

    # Quit as a user does: Connection → Quit.
    desktop.click(desktop.wait_one("menu item", "Connection"))
    desktop.click(desktop.wait_one("menu item", "Quit"))
    desktop.wait(lambda: desktop.program_status() is not None, "berth to quit")
    assert desktop.returncode == 0
    print(f"\nAT-SPI flow, log-in to quit: {time.monotonic() - started:.1f} s")
