"""Fixtures for the flow tests: the app started as ``berth`` starts it (the last saved
connection, its password in the keyring; or, with none, the embedded registry), a
real registry process behind it, and nothing else. From there a test uses only the
mouse and the keyboard (``tests/support/gui.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.client.credentials import CredentialStore
from app.client.profiles import Profile
from app.ui.common.settings import Settings
from app.ui.main import connect_on_start
from app.ui.main_window import MainWindow
from tests.support.distribution import DistributionServer
from tests.support.keyrings import MemoryKeyring
from tests.support.registry import PASSWORD, RegistryServer

Launch = Callable[..., MainWindow]
WAIT_MS = 30_000


@pytest.fixture
def launch(
    qtbot: QtBot,
    qt_loop: asyncio.AbstractEventLoop,
    settings: Settings,
    memory_keyring: MemoryKeyring,
) -> Iterator[Launch]:
    """``launch(server, user)``: a saved connection to ``server`` as ``user`` (password
    in the keyring) and the app started on it; ``launch(data_dir=DIR)``: a first start
    with no connection saved, on the embedded registry in ``DIR``; ``launch()`` with
    neither: the window before anything connects."""
    windows: list[MainWindow] = []

    def start(
        server: RegistryServer | None = None,
        user: str = "root",
        *,
        data_dir: Path | None = None,
        kind: str = "berth",
        name: str = "test registry",
        connect: bool = True,
        profiles: list[Profile] | None = None,
        profile: Profile | None = None,
        secret: str | None = None,
    ) -> MainWindow:
        store = CredentialStore(backend=memory_keyring)
        if profiles is not None:
            settings.set_profiles(profiles)
        if profile is not None:  # a saved connection of any kind, its secret in the keyring
            settings.set_profiles([profile])
            settings.set_last_profile(profile.name)
            if secret is not None:
                store.set(profile.secret_account, secret)
        if server is not None:
            profile = Profile(name=name, url=server.url, username=user, kind=kind)  # type: ignore[arg-type]
            settings.set_profiles([profile])
            settings.set_last_profile(profile.name)
            store.set(profile.secret_account, PASSWORD)
        window = MainWindow(settings, store)
        windows.append(window)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        if connect and (server is not None or data_dir is not None or profile is not None):
            connect_on_start(window, data_dir=data_dir)
            qtbot.waitUntil(lambda: window.backend is not None, timeout=60_000)
            qtbot.waitUntil(lambda: not window.ops.busy, timeout=WAIT_MS)
        return window

    yield start
    for window in windows:
        if window.closed:
            continue
        window.close()
        qtbot.waitUntil(lambda w=window: w.closed, timeout=WAIT_MS)
        window.deleteLater()


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[DistributionServer]:
    """A CNCF Distribution 2.8 holding the content of tests/ui/oci/test_oci_distribution.py."""
    from tests.ui.oci.test_oci_distribution import seeded_distribution

    yield from seeded_distribution(tmp_path)
