"""The operations helper at a window's close: drained, it starts nothing more (a
timer or a repaint that asks for a load while the window shuts down)."""

from __future__ import annotations

import asyncio

from pytestqt.qtbot import QtBot

from app.client.errors import ConnectionFailed
from app.ui.common.operations import Operations


def test_nothing_starts_after_a_drain(qt_loop: asyncio.AbstractEventLoop, qtbot: QtBot) -> None:
    ops = Operations()
    started: list[str] = []

    async def load(name: str) -> None:
        started.append(name)
        await asyncio.sleep(30)

    ops.run(load("before"), name="images-page")
    qtbot.waitUntil(lambda: started == ["before"], timeout=5_000)
    drained = qt_loop.create_task(ops.drain())
    qtbot.waitUntil(drained.done, timeout=5_000)
    assert not ops.busy

    late = ops.run(load("after"), name="images-page")
    assert late.cancelled()
    assert not ops.busy
    qtbot.wait(50)
    assert started == ["before"]
    # No task is left for the loop to run after its window is gone.
    assert [t.get_name() for t in asyncio.all_tasks(qt_loop) if not t.done()] == []

    # The window's last repaint may ask for rows after the loop stopped being the
    # current one (the test's loop fixture unsets it; so does the app at exit).
    asyncio.events._set_running_loop(None)
    asyncio.set_event_loop(None)
    try:
        last = ops.run(load("after the loop"), name="images-page")
    finally:
        asyncio.set_event_loop(qt_loop)
        asyncio.events._set_running_loop(qt_loop)
    assert last.cancelled()
    assert started == ["before"]


def test_a_replaced_load_whose_failure_is_already_queued_reports_nothing(
    qt_loop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    """F5 while the failure of the previous load of the same name waits on the loop
    (it ended, its report not yet run): the bar must not show that old failure
    after the F5 cleared it. Seen as a refused manifest read re-appearing after F5."""
    ops = Operations()
    failures: list[str] = []
    ops.failed.connect(lambda error, name: failures.append(error.message))
    answers: list[str] = []
    gate: asyncio.Future[None] = qt_loop.create_future()
    ended_unreported: list[bool] = []

    async def old_load() -> None:
        await gate

    async def new_load() -> str:
        return "new"

    def replace() -> None:
        # Runs after the old task has ended and before its report (FIFO turns).
        ended_unreported.append(old.done() and old.exception() is not None)
        ops.run(new_load(), name="details", on_done=answers.append)

    old = ops.run(old_load(), name="details", on_done=lambda _: answers.append("old"))
    qtbot.wait(10)
    gate.set_exception(ConnectionFailed("refused the connection"))
    qt_loop.call_soon(replace)
    qtbot.waitUntil(lambda: answers == ["new"] and not ops.busy, timeout=5_000)
    qtbot.wait(50)
    assert ended_unreported == [True]  # the window this test is about did occur
    assert failures == []


def test_a_load_that_fails_on_its_own_is_reported(
    qt_loop: asyncio.AbstractEventLoop, qtbot: QtBot
) -> None:
    ops = Operations()
    failures: list[str] = []
    ops.failed.connect(lambda error, name: failures.append(f"{name}: {error.message}"))

    async def load() -> None:
        raise ConnectionFailed("refused the connection")

    ops.run(load(), name="details")
    qtbot.waitUntil(lambda: failures != [], timeout=5_000)
    assert failures == ["details: refused the connection"]
