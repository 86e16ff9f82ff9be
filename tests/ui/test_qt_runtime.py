"""Guards against defects of the Qt binding itself that would crash the app."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    fired = Signal()
    carried = Signal(object)


def test_signal_emit_keeps_reference_counts() -> None:
    # PySide6 6.12.0 returned True from emit() without a new reference, so every
    # emit lowered True's count until the interpreter aborted (bool_dealloc).
    emitter = _Emitter()
    received: list[object] = []
    emitter.carried.connect(received.append)
    before = sys.getrefcount(True)
    for _ in range(2000):
        emitter.fired.emit()
        emitter.carried.emit(True)
    received.clear()
    # A few references come and go elsewhere; the defect drained one per emit.
    assert abs(sys.getrefcount(True) - before) < 50
