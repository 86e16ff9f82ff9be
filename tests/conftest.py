"""Fixtures for the whole suite: real registry processes, and a guard that fails
any test leaving a child process behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import children_of
from tests.support.registry import RegistryServer, standard_registry


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    before = set(children_of(os.getpid()))
    yield
    left = set(children_of(os.getpid())) - before
    if left:
        cmdlines = []
        for pid in left:
            try:
                cmdlines.append(
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
            except OSError:
                continue
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        if cmdlines:
            pytest.fail(f"test left processes running: {cmdlines}")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A running registry with the standard accounts (see ``standard_registry``)."""
    server = standard_registry(tmp_path / "registry").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[object]:
    """Start registries with custom timing: ``registry_factory(review_delay=0, ...)``."""
    started: list[RegistryServer] = []

    def make(**kw: object) -> RegistryServer:
        server = standard_registry(tmp_path / f"registry{len(started)}", **kw).start()
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()
