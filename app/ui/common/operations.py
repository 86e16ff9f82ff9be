"""The one helper every UI action goes through to do network work.

``ops.run(coro, name="tags")`` starts the coroutine as an asyncio task on the
qasync loop and returns at once. While any operation runs, ``busyChanged(True)``
lets the window show it. A newer operation with the same *name* cancels the older
one, so changing the selection drops the stale load instead of racing it; an
operation cancelled that way reports nothing, even when it had already ended and
only its report was still queued (an F5 must not be followed by the failure of the
load it replaced). When an
operation fails, the failure goes to one place: an expected
:class:`~app.client.errors.ClientError` is emitted as ``failed`` (the window shows
it in the error bar, or asks to log in again on a 401); anything else is a bug and
goes to ``sys.excepthook`` (the exception dialog). A ``background`` operation (an
event stream that runs for as long as a view is open) is tracked, cancelled and
reported the same way but does not count as busy.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from PySide6.QtCore import QObject, Signal

from app.client.errors import ClientError

T = TypeVar("T")


class Operations(QObject):
    busyChanged = Signal(bool)
    failed = Signal(object, str)  # (ClientError, operation name)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._named: dict[str, asyncio.Task[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        # Cancelled ones whose report may still be queued: they report nothing.
        self._dropped: set[asyncio.Task[Any]] = set()
        self._closed = False  # drained: the window is closing, its clients are going
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def busy(self) -> bool:
        return bool(self._tasks - self._background)

    def running(self, name: str) -> bool:
        task = self._named.get(name)
        return task is not None and not task.done()

    def run(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: str | None = None,
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[ClientError], bool] | None = None,
        background: bool = False,
    ) -> asyncio.Task[T]:
        """Start ``coro``. ``on_done(result)`` runs on success; ``on_error`` may
        handle an expected failure itself (return True) before it is reported."""
        if self._closed:
            # Drained: the window is closing. Nothing of it runs, and no task is left
            # for the loop to finish after the window (and this object) are gone.
            coro.close()
            # On the loop the operations ran on: after the window's close it may no
            # longer be the current one (a view asking for rows on its last repaint).
            stopped: asyncio.Future[T] = (self._loop or asyncio.get_event_loop()).create_future()
            stopped.cancel()
            return cast("asyncio.Task[T]", stopped)
        if name is not None:
            self.cancel(name)
        self._loop = loop = asyncio.get_event_loop()
        task = loop.create_task(coro, name=name or getattr(coro, "__qualname__", "operation"))
        was_busy = self.busy
        self._tasks.add(task)
        if background:
            self._background.add(task)
        if name is not None:
            self._named[name] = task
        if not was_busy and self.busy:
            self.busyChanged.emit(True)
        task.add_done_callback(lambda t: self._finished(t, name, on_done, on_error))
        return task

    def cancel(self, name: str) -> None:
        task = self._named.pop(name, None)
        if task is not None:
            self._drop(task)

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            self._drop(task)
        self._named.clear()

    def _drop(self, task: asyncio.Task[Any]) -> None:
        # A task that has ended may still have its report queued (done callbacks
        # run on a later turn of the loop): cancel() would not stop that.
        if task in self._tasks:
            self._dropped.add(task)
        task.cancel()

    async def drain(self) -> None:
        """Cancel everything and wait until it has stopped (window close); what a
        timer or a repaint asks for afterwards is cancelled before it starts."""
        self._closed = True
        self.cancel_all()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _finished(
        self,
        task: asyncio.Task[Any],
        name: str | None,
        on_done: Callable[[Any], None] | None,
        on_error: Callable[[ClientError], bool] | None,
    ) -> None:
        was_busy = self.busy
        self._tasks.discard(task)
        self._background.discard(task)
        if name is not None and self._named.get(name) is task:
            del self._named[name]
        dropped = task in self._dropped
        self._dropped.discard(task)
        try:
            if dropped or task.cancelled():
                return
            exc = task.exception()
            if exc is None:
                if on_done is not None:
                    on_done(task.result())
            elif isinstance(exc, ClientError):
                if on_error is None or not on_error(exc):
                    self.failed.emit(exc, name or "")
            else:
                sys.excepthook(type(exc), exc, exc.__traceback__)
        except Exception:
            # A bug in a completion callback: same place as any other bug.
            sys.excepthook(*sys.exc_info())
        finally:
            if was_busy and not self.busy:
                self.busyChanged.emit(False)
