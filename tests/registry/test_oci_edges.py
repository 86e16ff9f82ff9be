"""The OCI API at its edges: tokens asked for in split scopes or for another
service, an upload interrupted by kill -9 or cancelled while a chunk streams in,
methods and paths no endpoint has, an internal failure, Range requests outside a
blob. Every answer is the spec's ``{"errors": [...]}`` with a spec code."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from app.registry import accounts
from app.registry.service import Registry
from tests.registry.oci_helpers import assert_error, sha256, upload
from tests.support.registry import PASSWORD, RegistryServer

NAME = "acme/web/app"


@pytest.fixture
def server(registry: RegistryServer) -> RegistryServer:
    """A registry of this test's own (some of these tests kill or break it)."""
    return registry


def wait_for(what: str, done: Callable[[], bool]) -> None:
    """Poll for a background effect (the bound only keeps a broken build from hanging)."""
    deadline = time.monotonic() + 120
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


class Streaming:
    """A request whose body is sent piece by piece over a raw socket, as a client
    pushing a big chunk over a slow link does."""

    def __init__(self, server: RegistryServer, method: str, path: str, length: int) -> None:
        parts = urlsplit(server.url)
        assert parts.hostname is not None
        assert parts.port is not None
        auth = base64.b64encode(f"writer:{PASSWORD}".encode()).decode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Authorization: Basic {auth}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {length}\r\n\r\n"
        )
        self.sock = socket.create_connection((parts.hostname, parts.port))
        self.sock.settimeout(120)  # only so that a broken build fails instead of hanging
        self.sock.sendall(head.encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, bytes]:
        raw = b""
        while b"\r\n\r\n" not in raw:
            got = self.sock.recv(65536)
            assert got, raw
            raw += got
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            got = self.sock.recv(65536)
            assert got
            body += got
        return status, body

    def close(self) -> None:
        self.sock.close()


def start_upload(c: httpx.Client) -> tuple[str, str]:
    r = c.post(f"/v2/{NAME}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    return location, location.rsplit("/", 1)[1]


def upload_file(server: RegistryServer, session: str) -> Path:
    return server.data / "uploads" / session


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


# tokens ---------------------------------------------------------------------------


def test_a_repository_in_two_scope_parameters_gets_both_actions(server: RegistryServer) -> None:
    blob = b"split scopes"
    with server.client("writer") as c:
        upload(c, NAME, blob)
    params = [
        ("service", "berth-registry"),
        ("scope", f"repository:{NAME}:pull"),
        ("scope", f"repository:{NAME}:push"),
    ]
    r = httpx.get(f"{server.url}/auth/token", params=params, auth=("writer", PASSWORD))
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": NAME, "actions": ["pull", "push"]}]
    with server.client(headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.head(f"/v2/{NAME}/blobs/{sha256(blob)}").status_code == 200
        assert c.post(f"/v2/{NAME}/blobs/uploads/").status_code == 202


def test_tokens_are_for_this_service_only(server: RegistryServer) -> None:
    registry = Registry.open(server.data)
    try:
        secret = registry.auth.secret
        with registry.db.read() as conn:
            writer = accounts.get_user(conn, "writer")
    finally:
        registry.close()
    now = int(time.time())
    claims = {
        "iss": "berth-registry",
        "sub": "writer",
        "uid": writer.id,
        "stamp": writer.stamp,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "access": [{"type": "repository", "name": NAME, "actions": ["pull", "push"]}],
    }
    for audience in ("another-registry", None):
        forged = {**claims, "aud": audience} if audience else claims
        token = jwt.encode(forged, secret, algorithm="HS256")
        with server.client(headers={"Authorization": f"Bearer {token}"}) as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
            assert_error(c.post(f"/v2/{NAME}/blobs/uploads/"), 401, "UNAUTHORIZED")
    token = jwt.encode({**claims, "aud": "berth-registry"}, secret, algorithm="HS256")
    with server.client(headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get("/v2/").status_code == 200
    r = httpx.get(
        f"{server.url}/auth/token",
        params={"service": "another-registry", "scope": f"repository:{NAME}:pull"},
        auth=("writer", PASSWORD),
    )
    assert_error(r, 400, "UNSUPPORTED")


# uploads --------------------------------------------------------------------------


def test_after_kill_9_an_upload_reports_only_what_was_acknowledged(
    server: RegistryServer,
) -> None:
    acknowledged = hashlib.sha256(b"acknowledged").digest() * 4096  # 128 KiB
    rest = b"the rest of it" * 1000
    with server.client("writer") as c:
        location, session = start_upload(c)
        r = c.patch(location, content=acknowledged)
        assert r.status_code == 202, r.text
        assert r.headers["range"] == f"0-{len(acknowledged) - 1}"
    # A second chunk is arriving (2 MiB of a promised 8) when the process dies.
    stream = Streaming(server, "PATCH", location, 8 << 20)
    stream.send(b"\x00" * (2 << 20))
    path = upload_file(server, session)
    wait_for("the unacknowledged bytes on disk", lambda: file_size(path) >= len(acknowledged) + 1)
    server.kill()
    stream.close()
    server.start()
    with server.client("writer") as c:
        r = c.get(location)
        assert r.status_code == 204, r.text
        assert r.headers["range"] == f"0-{len(acknowledged) - 1}"
        # The client resumes where it was told, and finishes.
        r = c.patch(
            location,
            content=rest,
            headers={"Content-Range": f"{len(acknowledged)}-{len(acknowledged) + len(rest) - 1}"},
        )
        assert r.status_code == 202, r.text
        digest = sha256(acknowledged + rest)
        assert c.put(location, params={"digest": digest}).status_code == 201
        assert c.get(f"/v2/{NAME}/blobs/{digest}").content == acknowledged + rest


def test_cancel_while_a_chunk_streams_in(server: RegistryServer) -> None:
    with server.client("writer") as c:
        location, session = start_upload(c)
    stream = Streaming(server, "PATCH", location, 4 << 20)
    try:
        stream.send(b"\x01" * (1 << 20))
        path = upload_file(server, session)
        wait_for("the first MiB on disk", lambda: file_size(path) >= 1 << 20)
        with server.client("writer") as c:
            r = c.delete(location)
            assert r.status_code == 204, r.text
        stream.send(b"\x01" * (64 << 10))
        status, body = stream.response()
    finally:
        stream.close()
    assert status == 404, body
    assert [e["code"] for e in json.loads(body)["errors"]] == ["BLOB_UPLOAD_UNKNOWN"]
    assert not path.exists()
    with server.client("writer") as c:
        assert_error(c.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
        assert_error(c.put(location, params={"digest": sha256(b"")}), 404, "BLOB_UPLOAD_UNKNOWN")


# the error shape everywhere under /v2 -----------------------------------------------


def test_an_internal_failure_answers_in_the_oci_shape(server: RegistryServer) -> None:
    """A file where the blob store wants a directory makes the commit fail inside
    the server: the client gets 500 in the spec's shape, and the registry goes on."""
    data = b"a blob whose directory is blocked"
    digest = sha256(data)
    blocker = server.data / "blobs" / "1" / "sha256" / digest.split(":")[1][:2]
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"not a directory")
    with server.client("writer") as c:
        r = c.post(f"/v2/{NAME}/blobs/uploads/", params={"digest": digest}, content=data)
        assert_error(r, 500, "UNKNOWN")
        assert r.headers["content-type"] == "application/json"
        blocker.unlink()
        assert upload(c, NAME, data) == digest


def test_options_and_unknown_methods_answer_in_the_oci_shape(server: RegistryServer) -> None:
    with server.client("writer") as c:
        for path, methods in (
            ("/v2/", {"GET", "HEAD", "OPTIONS"}),
            (f"/v2/{NAME}/tags/list", {"GET", "OPTIONS"}),
            (f"/v2/{NAME}/manifests/v1", {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}),
            (f"/v2/{NAME}/blobs/uploads/", {"POST", "OPTIONS"}),
        ):
            r = c.options(path)
            assert r.status_code == 204, (path, r.text)
            assert set(r.headers["allow"].split(", ")) == methods
            r = c.request("PROPFIND", path)
            assert_error(r, 405, "UNSUPPORTED")
            assert set(r.headers["allow"].split(", ")) == methods
        assert_error(c.post("/v2/"), 405, "UNSUPPORTED")
        assert_error(c.request("TRACE", "/v2/_catalog"), 405, "UNSUPPORTED")


def test_references_holding_a_slash_answer_spec_codes(server: RegistryServer) -> None:
    hexpart = "a" * 32
    with server.client("writer") as c:
        bad = f"sha256:{hexpart}%2f{hexpart}"
        assert_error(c.get(f"/v2/{NAME}/blobs/{bad}"), 400, "DIGEST_INVALID")
        assert_error(c.get(f"/v2/{NAME}/referrers/{bad}"), 400, "DIGEST_INVALID")
        assert_error(c.get(f"/v2/{NAME}/manifests/v1%2fv2"), 404, "MANIFEST_UNKNOWN")
        r = c.put(f"/v2/{NAME}/manifests/v1%2fv2", content=b"{}")
        assert_error(r, 400, "MANIFEST_INVALID")
        assert_error(c.get(f"/v2/{NAME}/blobs/uploads/a%2fb"), 404, "BLOB_UPLOAD_UNKNOWN")
        assert_error(c.get("/v2/acme/web/app/nothing-here"), 404, "UNSUPPORTED")
    with server.client() as anonymous:
        assert_error(anonymous.get(f"/v2/{NAME}/blobs/{bad}"), 401, "UNAUTHORIZED")


def test_an_unsatisfiable_range_is_not_an_upload_error(server: RegistryServer) -> None:
    data = b"0123456789"
    with server.client("writer") as c:
        upload(c, NAME, data)
        for value in ("bytes=100-200", "bytes=10-", "bytes=abc"):
            r = c.get(f"/v2/{NAME}/blobs/{sha256(data)}", headers={"Range": value})
            assert_error(r, 416, "SIZE_INVALID")
            assert r.headers["content-range"] == f"bytes */{len(data)}"
