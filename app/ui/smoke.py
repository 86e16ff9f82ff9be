"""``berth --smoke-test``: start, paint the window, connect, then quit by itself.

Packaging checks (``tests/packaging``, ``packaging/smoke-bundle.sh``) and start-up
measurements run the real app this way. It prints one line per milestone on stdout,
flushed at once so a reader can time them::

    berth: window painted
    berth: keyring <backend class>
    berth: embedded registry <argv[0]> pid <pid>
    berth: connected to <url> as <user>, <n> workspaces
    berth: demo seeded                      (--demo: its whole history is in place)
    berth: embedded registry stopped

and then closes the window through the normal path, so the embedded registry is
stopped as on any quit. A demo that is still being seeded once connected is waited
for (it seeds beside the running registry) and its seeding must succeed. Exit
status 0 when the window was painted and the connection reached the workspace
list, 1 otherwise. Bugs print their traceback and fail the run instead of opening the
exception dialog (a second window would keep the app from quitting).
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from types import TracebackType
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer

from app.client.embedded import State
from app.ui.common.formatting import counted
from app.ui.main_window import MainWindow

# Long enough for a first demo seeding on a slow machine; a hung start fails the
# run instead of hanging whoever started it.
GIVE_UP_AFTER_MS = 300_000


def say(line: str) -> None:
    print(f"berth: {line}", flush=True)


class SmokeTest(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.painted = False
        self.failures: list[str] = []
        self._connecting: asyncio.Task[Any] | None = None
        self._closing = False
        sys.excepthook = self._bug
        window.embeddedStateChanged.connect(lambda _state: self._maybe_finish())
        window.installEventFilter(self)
        QTimer.singleShot(GIVE_UP_AFTER_MS, self._give_up)

    @property
    def exit_status(self) -> int:
        return 0 if self.painted and not self.failures else 1

    def watch(self, connecting: asyncio.Task[Any]) -> None:
        """Quit once ``connecting`` (the window's connect operation) has finished."""
        self._connecting = connecting
        connecting.add_done_callback(lambda _task: self._maybe_finish())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.window and event.type() == QEvent.Type.Paint and not self.painted:
            self.painted = True
            say("window painted")
            QTimer.singleShot(0, self._maybe_finish)
        return False

    def _maybe_finish(self) -> None:
        if self._closing or not self.painted:
            return
        if self._connecting is None or not self._connecting.done():
            return
        window = self.window
        embedded = window.embedded
        if embedded is not None and embedded.seeding is not None and window.backend is not None:
            return  # the demo is still being seeded: wait for the rest of it
        if embedded is not None and embedded.seed_error:
            self.failures.append(embedded.seed_error)
        keyring = type(window.store.backend)
        say(f"keyring {keyring.__module__}.{keyring.__qualname__}")
        if embedded is not None:
            say(f"embedded registry {embedded.command[0]} pid {embedded.pid}")
        if window.backend is None or window.identity is None or window.profile is None:
            self.failures.append(f"not connected: {window.error_bar.text or 'no error shown'}")
        else:
            count = window.navigator.nav_model.rowCount()
            say(
                f"connected to {window.profile.base_url} as {window.identity.user}, "
                f"{counted(count, 'workspace')}"
            )
            if embedded is not None and embedded.demo and not embedded.seed_error:
                say("demo seeded")
        self._close()

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        for failure in self.failures:
            print(f"berth: smoke test failed: {failure}", file=sys.stderr, flush=True)
        embedded = self.window.embedded
        if embedded is not None:
            previous = embedded.on_state

            def on_state(state: State) -> None:
                previous(state)
                if state is State.STOPPED:
                    say("embedded registry stopped")

            embedded.on_state = on_state
        self.window.close()

    def _give_up(self) -> None:
        self.failures.append(f"gave up after {GIVE_UP_AFTER_MS // 1000} s")
        self._close()

    def _bug(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        sys.stderr.write("".join(traceback.format_exception(exc_type, exc, tb)))
        self.failures.append(f"unexpected {exc_type.__name__}")
        self._close()
