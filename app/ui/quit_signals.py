"""SIGTERM and SIGINT close the window the way its close button does: the layout is
saved, running work (a bulk delete) is stopped, the embedded registry is stopped
and waited for. A session logging out sends SIGTERM; Ctrl+C in a terminal, SIGINT.

Python runs a signal handler only when the interpreter next gets control, and while
Qt's event loop waits in C++ that can be a long time away. So the handler proper is
the C-level one Python installs: it writes the signal's number to a socket
(``signal.set_wakeup_fd``) that a QSocketNotifier watches, and the window is closed
from the event loop, never from inside a handler that may interrupt any code.
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterable
from types import FrameType

from PySide6.QtCore import QObject, QSocketNotifier
from PySide6.QtWidgets import QWidget

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class QuitOnSignals(QObject):
    """Close ``window`` on the first of ``signals``; remember which one came."""

    def __init__(self, window: QWidget, signals: Iterable[signal.Signals] = SIGNALS) -> None:
        super().__init__(window)
        self.window = window
        self.received: int | None = None  # the first signal, for the exit status
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._notifier = QSocketNotifier(self._read.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._woken)
        self._previous_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        self._previous = {s: signal.signal(s, self._note) for s in signals}

    @property
    def exit_status(self) -> int:
        """The shell's convention for a program a signal ended: 128 + its number."""
        return 0 if self.received is None else 128 + self.received

    def _note(self, _signum: int, _frame: FrameType | None) -> None:
        # Installed so the default action (die at once) does not happen; the work is
        # done in _woken, from the number the wakeup fd carries.
        return

    def _woken(self) -> None:
        try:
            numbers = self._read.recv(64)
        except BlockingIOError:
            return
        ours = [n for n in numbers if n in self._previous]  # other handlers write here too
        if not ours:
            return
        if self.received is None:
            self.received = ours[0]
        self.window.close()  # a second signal closes again: the close path is idempotent

    def uninstall(self) -> None:
        """Give the signals back (the app is done with its window)."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        signal.set_wakeup_fd(self._previous_fd)
        self._notifier.setEnabled(False)
        for sock in (self._read, self._write):
            with contextlib.suppress(OSError):
                sock.close()
