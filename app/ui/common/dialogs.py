"""Run a dialog without blocking the asyncio loop.

``QDialog.exec()`` starts a nested event loop; inside a qasync task that would
re-enter the loop from within a task step. Every dialog seam therefore opens its
dialog window-modally with ``open()`` and awaits ``finished``.
"""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QDialog


async def ask(dialog: QDialog) -> bool:
    """Show ``dialog`` and wait for it; True when accepted."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def finished(result: int) -> None:
        if not done.done():
            done.set_result(result)

    dialog.finished.connect(finished)
    dialog.open()
    try:
        result = await done
    finally:
        if dialog.isVisible():
            dialog.reject()
    return result == QDialog.DialogCode.Accepted.value
