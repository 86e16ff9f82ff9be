"""Pauses of the cyclic garbage collector: overlapping pauses end with the last one,
and a collector that was off before stays off."""

from __future__ import annotations

import gc
import threading

import pytest

from app.registry import cyclic_gc


def test_overlapping_pauses_end_with_the_last() -> None:
    assert gc.isenabled()
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with cyclic_gc.paused():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    try:
        with cyclic_gc.paused():
            assert not gc.isenabled()
            thread.start()
            assert entered.wait(10)
        assert not gc.isenabled()  # the other thread's pause still runs
    finally:
        release.set()
        thread.join(10)
    assert gc.isenabled()


def test_a_collector_turned_off_before_stays_off() -> None:
    gc.disable()
    try:
        with cyclic_gc.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_after_an_error() -> None:
    @cyclic_gc.pausing
    def fails() -> None:
        assert not gc.isenabled()
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        fails()
    assert gc.isenabled()
