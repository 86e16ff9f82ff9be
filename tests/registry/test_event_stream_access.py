"""An open event stream follows its caller's access as it changes (issue 17 item 3):
a revoked grant withholds the repository's events from the next one on, a changed
password or a removed user ends the stream. The changes are made by another process
(the command line), as on another node."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support import oci
from tests.support.api import api
from tests.support.registry import PASSWORD, RegistryServer, admin_ok


def wait_for(what: str, done: Callable[[], bool]) -> None:
    """Poll for a background effect (the bound only keeps a broken build from hanging)."""
    deadline = time.monotonic() + 60
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


@dataclass
class Stream:
    """The events one user's stream delivers, read in a thread."""

    events: list[dict[str, object]] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def types(self) -> list[str]:
        return [str(e["type"]) for e in self.events]


@pytest.fixture
def listen(registry: RegistryServer) -> Iterator[Callable[[str], Stream]]:
    clients: list[httpx.Client] = []

    def start(user: str) -> Stream:
        stream = Stream()
        client = httpx.Client(base_url=registry.url, auth=(user, PASSWORD), timeout=120)
        clients.append(client)
        opened = threading.Event()

        def read() -> None:
            try:
                with client.stream("GET", "/api/v1/workspaces/acme/events") as r:
                    assert r.status_code == 200
                    opened.set()
                    for line in r.iter_lines():
                        if line.startswith("data:"):
                            stream.events.append(json.loads(line[5:]))
            except httpx.HTTPError:
                pass
            finally:
                stream.ended.set()

        threading.Thread(target=read, daemon=True).start()
        assert opened.wait(60)
        return stream

    yield start
    for client in clients:
        client.close()


def push(registry: RegistryServer, tag: str) -> None:
    with registry.client("writer") as c:
        oci.push(c, "acme/web/app", oci.image([oci.layer({tag: tag.encode()})]), tag)


def gc_run(registry: RegistryServer) -> None:
    with api(registry, "wsadmin") as c:
        assert c.post("/workspaces/acme/gc/run").status_code == 200


def test_a_revoked_grant_withholds_the_next_events(
    registry: RegistryServer, listen: Callable[[str], Stream]
) -> None:
    stream = listen("reader")
    push(registry, "v1")
    wait_for("the first push", lambda: stream.types() == ["pushed"])
    admin_ok(registry.data, "grant", "acme/web", "reader", "none")
    push(registry, "v2")
    gc_run(registry)  # workspace-wide: still for a member, and after the push in order
    wait_for("the GC run", lambda: "gc_run" in stream.types())
    assert stream.types() == ["pushed", "gc_run"], stream.events
    assert not stream.ended.is_set()


def _lose_the_workspace(registry: RegistryServer) -> None:
    admin_ok(registry.data, "grant", "acme/web", "reader", "none")
    with api(registry, "wsadmin") as c:
        assert c.delete("/workspaces/acme/members/reader").status_code == 204


CHANGES: dict[str, Callable[[RegistryServer], object]] = {
    "password changed": lambda r: admin_ok(
        r.data, "user", "passwd", "reader", "--password-stdin", password="a-new-password"
    ),
    "user removed": lambda r: admin_ok(r.data, "user", "remove", "reader"),
    "workspace no longer visible": _lose_the_workspace,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_stream_ends_when_its_caller_may_no_longer_see_it(
    registry: RegistryServer, listen: Callable[[str], Stream], change: str
) -> None:
    stream = listen("reader")
    push(registry, "v1")
    wait_for("the first push", lambda: stream.types() == ["pushed"])
    CHANGES[change](registry)
    push(registry, "v2")
    gc_run(registry)
    wait_for("the stream to end", stream.ended.is_set)
    assert stream.types() == ["pushed"], stream.events
