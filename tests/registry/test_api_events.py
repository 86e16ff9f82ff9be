"""The per-workspace server-sent-events stream: what each caller sees, and that a
stream ends cleanly when the client leaves or the server stops."""

from __future__ import annotations

import signal
from typing import Any

import httpx
import pytest

from tests.support import oci
from tests.support.api import Content, api, as_listed, push_content
from tests.support.event_stream import END, Stream
from tests.support.registry import PASSWORD, RegistryServer


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
            for image, tag in (("acme/api/worker", "1.0"), ("acme/web/frontend", "v1")):
                image_id = content.ids[image]
                r = c.delete(f"/images/{image_id}/tags/{tag}", headers=as_listed(c, image_id))
                assert r.status_code == 204
            backend = content.ids["acme/web/backend"]
            assert c.delete(f"/images/{backend}", headers=as_listed(c, backend)).status_code == 204
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
            frontend = content.ids["acme/web/frontend"]
            r = c.delete(f"/images/{frontend}/tags/v1", headers=as_listed(c, frontend))
            assert r.status_code == 204
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


def test_a_stream_of_a_workspace_one_cannot_see_is_refused(registry: RegistryServer) -> None:
    """As every other workspace resource: the outsider (a member of globex only) and a
    workspace that does not exist get the same answer, before any stream starts."""
    with httpx.Client(base_url=registry.url + "/api/v1", auth=("outsider", PASSWORD)) as c:
        hidden = c.get("/workspaces/acme/events")
        missing = c.get("/workspaces/nosuch/events")
        assert hidden.status_code == missing.status_code == c.get("/workspaces/acme").status_code
        assert hidden.status_code in (403, 404)
        assert hidden.json()["error"]["code"] == missing.json()["error"]["code"]
