"""UI test fixtures: offscreen Qt, a qasync loop on the test's QApplication, a
memory keyring, and main windows connected to a real registry process.

The qasync loop is made "already running" on ``qapp``: the test drives it by
letting Qt process events (``qtbot.waitUntil``). It is never stopped (stopping
calls ``QApplication.exit`` and hangs the next test); a test that leaves asyncio
tasks running fails.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import keyring
import pytest
import qasync
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.client.credentials import CredentialStore
from app.client.profiles import Profile
from app.ui.common.settings import Settings
from app.ui.main_window import MainWindow
from tests.support.keyrings import MemoryKeyring
from tests.support.registry import PASSWORD, RegistryServer

# Every wait in these tests polls for the exact end state it asserts, so its ceiling
# only decides how long a broken test takes to fail. On a busy machine (CI, or a CPU
# hog beside the suite) ceilings of 5-20 s ran out while the app was still on its
# way; each is raised to at least WAIT_FLOOR_MS. Speed is measured in benchmarks.
WAIT_FLOOR_MS = 60_000
_qtbot_wait_until = QtBot.waitUntil


def _wait_until_patiently(
    self: QtBot, callback: Callable[[], bool | None], *, timeout: int = WAIT_FLOOR_MS
) -> None:
    _qtbot_wait_until(self, callback, timeout=max(timeout, WAIT_FLOOR_MS))


QtBot.waitUntil = _wait_until_patiently  # type: ignore[method-assign]
QtBot.wait_until = _wait_until_patiently  # type: ignore[method-assign]


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    ring = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def qt_loop(qapp: QApplication, qtbot: QtBot) -> Iterator[asyncio.AbstractEventLoop]:
    loop = qasync.QEventLoop(qapp, already_running=True)
    # Our own executor (name lookups, to_thread), so teardown can join its threads.
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-loop")
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            qtbot.waitUntil(lambda: all(t.done() for t in pending), timeout=10_000)
        executor.shutdown(wait=True)
        asyncio.events._set_running_loop(None)
        asyncio.set_event_loop(None)
        # Whatever the test left unclosed (a socket, a transport) is found now, in
        # this test's teardown, not later in whichever test the collector runs in.
        gc.collect()
        if pending:
            pytest.fail(f"test left asyncio tasks running: {[t.get_name() for t in pending]}")


WindowFactory = Callable[..., MainWindow]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.at(tmp_path / "berth.ini")


@pytest.fixture
def make_window(
    qtbot: QtBot,
    qt_loop: asyncio.AbstractEventLoop,
    settings: Settings,
    memory_keyring: MemoryKeyring,
) -> Iterator[WindowFactory]:
    windows: list[MainWindow] = []

    def make(server: RegistryServer | None = None, user: str = "root") -> MainWindow:
        window = MainWindow(settings, CredentialStore(backend=memory_keyring))
        windows.append(window)
        window.show()
        qtbot.waitExposed(window)
        if server is not None:
            profile = Profile(name="test", url=server.url, username=user)
            window.open_profile(profile, PASSWORD)
            wait_idle(qtbot, window)
            assert window.backend is not None, window.error_bar.text
        return window

    yield make
    for window in windows:
        window.close()
        qtbot.waitUntil(lambda w=window: w.closed, timeout=20_000)
        window.deleteLater()


def wait_idle(qtbot: QtBot, window: MainWindow, timeout: int = WAIT_FLOOR_MS) -> None:
    """Wait until no operation runs (every page, detail and delete has landed)."""
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=timeout)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The offscreen platform plugin warns that it cannot propagate size hints every
    # time a window with a status bar is laid out, and that it cannot raise a window
    # or grab the keyboard when a menu pops up: noise about the test platform, not
    # about Berth.
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(
                pytest.mark.qt_log_ignore(
                    "does not support propagateSizeHints",
                    "does not support raise",
                    "does not support grabbing",
                )
            )
