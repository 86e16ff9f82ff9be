"""Fixtures for the whole suite: real registry processes, and a guard that fails
any test leaving a child process behind."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import children_of
from tests.support.registry import RegistryServer, standard_registry
from tests.support.seaweedfs import SeaweedS3


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


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    """One S3-compatible object store (SeaweedFS) for every test that needs one, each
    in buckets of its own (``bucket`` fixture). Started on first use."""
    store = SeaweedS3()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def bucket(seaweed: SeaweedS3, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket for this test."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40]
    return seaweed.create_bucket(f"t-{name.strip('-')}-{uuid.uuid4().hex[:8]}")
