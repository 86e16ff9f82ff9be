"""The per-workspace server-sent-events stream: what each caller sees, and that a
stream ends cleanly when the client leaves or the server stops."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import socket
import threading
from typing import Any

import httpx
import pytest

from tests.support import oci
from tests.support.api import Content, api, push_content
from tests.support.registry import PASSWORD, RegistryServer

END = {"type": "<end of stream>"}


class Stream:
    """Reads a workspace's event stream in a thread; events arrive on ``events``."""

    def __init__(self, server: RegistryServer, user: str, workspace: str = "acme") -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.opened = threading.Event()
        self.status: int | None = None
        self.socket: socket.socket | None = None
        self.client = httpx.Client(
            base_url=server.url + "/api/v1",
            auth=httpx.BasicAuth(user, PASSWORD),
            timeout=httpx.Timeout(30, read=120),
        )
        self.thread = threading.Thread(target=self._read, args=(workspace,), daemon=True)
        self.thread.start()
        assert self.opened.wait(60)

    def _read(self, workspace: str) -> None:
        try:
            with self.client.stream("GET", f"/workspaces/{workspace}/events") as r:
                self.socket = r.extensions["network_stream"].get_extra_info("socket")
                self.status = r.status_code
                self.opened.set()
                kind, data = None, None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        kind = line[len("event: ") :]
                    elif line.startswith("data: "):
                        data = json.loads(line[len("data: ") :])
                    elif line == "" and kind is not None and data is not None:
                        assert data["type"] == kind
                        self.events.put(data)
                        kind, data = None, None
        except httpx.HTTPError:
            pass  # the test closed the client
        finally:
            self.opened.set()
            self.events.put(END)

    def until(self, kind: str) -> list[dict[str, Any]]:
        """Events up to and including the first of ``kind``."""
        seen = []
        while True:
            event = self.events.get(timeout=60)
            seen.append(event)
            if event["type"] in (kind, END["type"]):
                return seen

    def close(self) -> None:
        """Hang up, as a client that goes away does (the reader thread ends at once)."""
        if self.socket is not None:
            with contextlib.suppress(OSError):
                self.socket.shutdown(socket.SHUT_RDWR)
        self.thread.join(30)
        self.client.close()


@pytest.fixture
def content(registry: RegistryServer) -> Content:
    return push_content(registry)


def test_events_reach_who_may_read_them(registry: RegistryServer, content: Content) -> None:
    reader = Stream(registry, "reader")
    admin = Stream(registry, "wsadmin")
    try:
        assert (reader.status, admin.status) == (200, 200)
        with registry.client("root") as c:
            oci.push(c, "acme/web/frontend", content.tagged["acme/web/frontend"]["v1"], "new")
            oci.push(c, "acme/api/worker", content.tagged["acme/api/worker"]["1.0"], "new")
        with api(registry) as c:
            assert c.delete(f"/images/{content.ids['acme/api/worker']}/tags/1.0").status_code == 204
            assert (
                c.delete(f"/images/{content.ids['acme/web/frontend']}/tags/v1").status_code == 204
            )
            assert c.delete(f"/images/{content.ids['acme/web/backend']}").status_code == 204
            assert c.post("/workspaces/acme/gc/run").status_code == 200

        def summary(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
            return [(e["type"], e.get("tag") or e.get("tags") or e.get("name")) for e in events]

        assert summary(admin.until("gc_run")) == [
            ("pushed", "new"),
            ("pushed", "new"),
            ("tag_deleted", ["1.0"]),
            ("tag_deleted", ["v1"]),
            ("image_deleted", "acme/web/backend"),
            ("gc_run", None),
        ]
        # The reader holds read on acme/web only: acme/api's events pass it by.
        got = reader.until("gc_run")
        assert summary(got) == [
            ("pushed", "new"),
            ("tag_deleted", ["v1"]),
            ("image_deleted", "acme/web/backend"),
            ("gc_run", None),
        ]
        assert got[1]["actor"] == "root"
        assert got[1]["image_id"] == content.ids["acme/web/frontend"]
        assert "manual" in got[-1]["run"]["triggers"]
    finally:
        reader.close()
        admin.close()


def test_streams_end_when_the_server_stops(registry: RegistryServer) -> None:
    streams = [Stream(registry, "reader"), Stream(registry, "wsadmin")]
    try:
        registry.stop()
        for stream in streams:
            assert stream.until("never") == [END]
        assert registry.process is not None
        assert registry.process.proc.returncode == 0
    finally:
        for stream in streams:
            stream.close()


def test_a_client_leaving_does_not_disturb_the_server(
    registry: RegistryServer, content: Content
) -> None:
    for _ in range(5):
        Stream(registry, "reader").close()
    stream = Stream(registry, "reader")
    try:
        with api(registry) as c:
            assert (
                c.delete(f"/images/{content.ids['acme/web/frontend']}/tags/v1").status_code == 204
            )
        assert [e["type"] for e in stream.until("tag_deleted")] == ["tag_deleted"]
    finally:
        stream.close()
    process = registry.process
    assert process is not None
    process.proc.send_signal(signal.SIGTERM)
    assert process.proc.wait(60) == 0
    assert process.proc.stderr is not None
    errors = process.proc.stderr.read()
    assert "Traceback" not in errors
    assert "Exception" not in errors


def test_a_stream_needs_credentials(registry: RegistryServer) -> None:
    with httpx.Client(base_url=registry.url + "/api/v1") as c:
        r = c.get("/workspaces/acme/events")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "UNAUTHORIZED"
