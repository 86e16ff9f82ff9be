"""The operations helper at a window's close: drained, it starts nothing more (a
timer or a repaint that asks for a load while the window shuts down)."""

from __future__ import annotations

import asyncio

from pytestqt.qtbot import QtBot

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
