"""Blobs over the OCI Distribution API: GET/HEAD with Range, uploads (monolithic,
session + PUT, chunked with Content-Range, streamed), digest verification, status,
cancel, cross-repository mount, blob DELETE, sha512, and what failed or stale
uploads leave behind (nothing visible)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.registry import housekeeping
from app.registry.db import schema as s
from app.registry.service import Registry
from tests.registry.oci_helpers import (
    assert_error,
    raw_request,
    running_registry,
    sha256,
    sha512,
    upload,
)
from tests.support.registry import RegistryServer

DATA = bytes(range(256)) * 4  # 1024 bytes, every offset distinguishable


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with running_registry(tmp_path_factory.mktemp("oci-blobs") / "data") as server:
        server.user("apiwriter")  # may write acme/api, may not read acme/web
        server.grant("acme/api", "apiwriter", "write")
        yield server


@pytest.fixture(scope="module")
def writer(reg: RegistryServer) -> Iterator[httpx.Client]:
    with reg.client("writer") as client:
        yield client


def _name() -> str:
    """A fresh image under acme/web for each test."""
    return f"acme/web/img-{uuid.uuid4().hex[:8]}"


def _sessions(reg: RegistryServer) -> int:
    r = Registry.open(reg.data)
    try:
        with r.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(s.upload_sessions)).scalar())
    finally:
        r.close()


def _upload_files(reg: RegistryServer) -> list[str]:
    return sorted(p.name for p in (reg.data / "uploads").iterdir())


def _wait_for(condition: object, what: str) -> None:
    """Poll until the server has finished reacting (no claim about how fast)."""
    deadline = time.monotonic() + 60
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


# GET / HEAD ---------------------------------------------------------------------


def test_get_and_head_answer_with_digest_and_length(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    name = _name()
    digest = upload(writer, name, DATA)
    r = writer.get(f"/v2/{name}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == str(len(DATA))
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    h = writer.head(f"/v2/{name}/blobs/{digest}")
    assert h.status_code == 200
    assert h.content == b""
    assert h.headers["Content-Length"] == str(len(DATA))
    assert h.headers["Docker-Content-Digest"] == digest


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=1000-", 1000, 1023),
        ("bytes=-24", 1000, 1023),
        ("bytes=1020-5000", 1020, 1023),  # an end past the size is cut to the size
        ("bytes=-5000", 0, 1023),
    ],
)
def test_range_answers_206_with_content_range(
    reg: RegistryServer, writer: httpx.Client, header: str, start: int, end: int
) -> None:
    name = _name()
    digest = upload(writer, name, DATA)
    r = writer.get(f"/v2/{name}/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 206
    assert r.content == DATA[start : end + 1]
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
    h = writer.head(f"/v2/{name}/blobs/{digest}", headers={"Range": header})
    assert h.status_code == 206
    assert h.headers["Content-Length"] == str(end - start + 1)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=1024-",  # starts past the end
        "bytes=2000-3000",
        "bytes=-0",
        "bytes=20-10",  # backwards
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "items=0-10",
        "bytes=0-1,5-6",  # several ranges: not offered
        "0-10",
    ],
)
def test_unsatisfiable_or_malformed_range_is_416(
    reg: RegistryServer, writer: httpx.Client, header: str
) -> None:
    name = _name()
    digest = upload(writer, name, DATA)
    r = writer.get(f"/v2/{name}/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 416, r.text
    assert r.headers["Content-Range"] == f"bytes */{len(DATA)}"


def test_unknown_and_malformed_digests(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    upload(writer, name, DATA)
    assert_error(writer.get(f"/v2/{name}/blobs/{sha256(b'other')}"), 404, "BLOB_UNKNOWN")
    assert_error(writer.head(f"/v2/{name}/blobs/{sha256(b'other')}"), 404, "BLOB_UNKNOWN")
    bad_digests = ("sha256:abc", "sha256:" + "Z" * 64, "md5:" + "0" * 32, "sha256", "nodigest")
    for bad in (*bad_digests, sha256(DATA) + "%0A"):
        assert_error(writer.get(f"/v2/{name}/blobs/{bad}"), 400, "DIGEST_INVALID")
    # An unknown image answers like an unknown blob.
    assert_error(writer.get(f"/v2/{_name()}/blobs/{sha256(DATA)}"), 404, "BLOB_UNKNOWN")


# uploads ------------------------------------------------------------------------


def test_monolithic_post(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    digest = sha256(DATA)
    r = writer.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=DATA)
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/{name}/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    assert writer.get(r.headers["Location"]).content == DATA


def test_monolithic_post_with_wrong_or_malformed_digest_leaves_nothing(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    name = _name()
    before = _sessions(reg)
    wrong = sha256(b"something else")
    r = writer.post(f"/v2/{name}/blobs/uploads/", params={"digest": wrong}, content=DATA)
    assert_error(r, 400, "DIGEST_INVALID")
    r = writer.post(f"/v2/{name}/blobs/uploads/", params={"digest": "sha256:12"}, content=DATA)
    assert_error(r, 400, "DIGEST_INVALID")
    for digest in (wrong, sha256(DATA)):
        assert_error(writer.head(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert _sessions(reg) == before


def test_session_then_put(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    r = writer.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["Location"]
    assert location.startswith(f"/v2/{name}/blobs/uploads/")
    assert r.headers["Docker-Upload-UUID"] in location
    assert r.headers["Range"] == "0-0"
    r = writer.put(location, params={"digest": sha256(DATA)}, content=DATA)
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/{name}/blobs/{sha256(DATA)}"
    assert writer.get(f"/v2/{name}/blobs/{sha256(DATA)}").content == DATA
    # The session is over.
    assert_error(writer.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_chunked_upload_with_content_range(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]

    def patch(start: int, end: int, loc: str) -> httpx.Response:
        return writer.patch(
            loc,
            content=DATA[start : end + 1],
            headers={"Content-Range": f"{start}-{end}", "Content-Type": "application/octet-stream"},
        )

    r = patch(0, 99, location)
    assert r.status_code == 202
    assert r.headers["Range"] == "0-99"
    location = r.headers["Location"]
    status = writer.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-99"
    assert status.headers["Location"] == location
    # Out of order: a repeat, a gap, and a chunk starting before the offset.
    for start, end in ((0, 99), (150, 199), (50, 149)):
        r = patch(start, end, location)
        assert_error(r, 416, "BLOB_UPLOAD_INVALID")
        assert r.headers["Range"] == "0-99"
    r = patch(100, 599, location)
    assert r.headers["Range"] == "0-599"
    # The last chunk rides on the closing PUT.
    r = writer.put(
        r.headers["Location"],
        params={"digest": sha256(DATA)},
        content=DATA[600:],
        headers={"Content-Range": f"600-{len(DATA) - 1}"},
    )
    assert r.status_code == 201, r.text
    assert writer.get(f"/v2/{name}/blobs/{sha256(DATA)}").content == DATA


def test_chunk_whose_length_disagrees_with_its_range_is_refused(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    name = _name()
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    r = writer.patch(location, content=DATA[:50], headers={"Content-Range": "0-99"})
    assert r.status_code == 416
    status = writer.get(location)
    assert status.headers["Range"] == "0-0"  # nothing was kept
    r = writer.patch(location, content=DATA[:10], headers={"Content-Range": "bytes=0-9x"})
    assert r.status_code == 416


def test_streamed_patches_without_content_range(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]

    def chunks() -> Iterator[bytes]:
        yield DATA[:300]
        yield DATA[300:700]

    r = writer.patch(location, content=chunks())  # chunked transfer encoding
    assert r.status_code == 202
    assert r.headers["Range"] == "0-699"
    r = writer.patch(r.headers["Location"], content=DATA[700:])
    assert r.headers["Range"] == f"0-{len(DATA) - 1}"
    r = writer.put(r.headers["Location"], params={"digest": sha256(DATA)})
    assert r.status_code == 201
    assert writer.get(f"/v2/{name}/blobs/{sha256(DATA)}").content == DATA


def test_put_with_wrong_digest_leaves_nothing_visible(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    name = _name()
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    writer.patch(location, content=DATA)
    wrong = sha256(DATA[:-1])
    assert_error(writer.put(location, params={"digest": wrong}), 400, "DIGEST_INVALID")
    for digest in (wrong, sha256(DATA)):
        assert_error(writer.head(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    # A failed verification ends the session, as in Distribution.
    assert_error(writer.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_put_needs_a_wellformed_digest(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    assert_error(writer.put(location, content=DATA), 400, "DIGEST_INVALID")
    assert_error(writer.put(location, params={"digest": "sha256:0"}), 400, "DIGEST_INVALID")
    # Still usable afterwards.
    r = writer.put(location, params={"digest": sha256(DATA)}, content=DATA)
    assert r.status_code == 201


def test_cancel_upload(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    writer.patch(location, content=DATA)
    session = location.rsplit("/", 1)[1]
    assert session in _upload_files(reg)
    assert writer.delete(location).status_code == 204
    assert session not in _upload_files(reg)
    assert_error(writer.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(writer.patch(location, content=DATA), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(writer.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(writer.head(f"/v2/{name}/blobs/{sha256(DATA)}"), 404, "BLOB_UNKNOWN")


def test_unknown_session_and_session_of_another_image(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    name, other = _name(), _name()
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    session = location.rsplit("/", 1)[1]
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        r = writer.request(method, f"/v2/{name}/blobs/uploads/{uuid.uuid4()}")
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
        r = writer.request(
            method, f"/v2/{other}/blobs/uploads/{session}", params={"digest": sha256(b"")}
        )
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    assert writer.get(location).status_code == 204  # untouched


def test_sha512_blobs(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    digest = upload(writer, name, DATA, sha512(DATA))
    r = writer.head(f"/v2/{name}/blobs/{digest}")
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == digest
    # Chunked too: the running hash is sha256 until the closing PUT names sha512.
    other = DATA[::-1]
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    location = writer.patch(location, content=other[:500]).headers["Location"]
    r = writer.put(location, params={"digest": sha512(other)}, content=other[500:])
    assert r.status_code == 201
    assert writer.get(f"/v2/{name}/blobs/{sha512(other)}").content == other
    assert_error(writer.head(f"/v2/{name}/blobs/{sha256(other)}"), 404, "BLOB_UNKNOWN")


def test_identical_uploads_are_stored_once_per_workspace(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    data = os.urandom(5000)
    for _ in range(3):
        upload(writer, _name(), data)
    hexpart = sha256(data).split(":")[1]
    objects = list((reg.data / "blobs").glob(f"*/sha256/{hexpart[:2]}/{hexpart}/*"))
    assert len(objects) == 1
    assert objects[0].read_bytes() == data


# mount ----------------------------------------------------------------------------


def _mount(client: httpx.Client, name: str, digest: str, source: str | None) -> httpx.Response:
    params = {"mount": digest} | ({"from": source} if source is not None else {})
    return client.post(f"/v2/{name}/blobs/uploads/", params=params)


def test_mount_within_a_workspace_when_the_source_is_readable(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    source, dest = _name(), _name()
    digest = upload(writer, source, DATA)
    r = _mount(writer, dest, digest, source)
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/{dest}/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    assert writer.get(f"/v2/{dest}/blobs/{digest}").content == DATA


def test_mount_falls_back_to_an_upload_session(reg: RegistryServer, writer: httpx.Client) -> None:
    source = _name()
    digest = upload(writer, source, DATA)
    api_image = f"acme/api/img-{uuid.uuid4().hex[:8]}"
    with reg.client("apiwriter") as apiwriter, reg.client("root") as root:
        cases = [
            # apiwriter may write acme/api but not read acme/web
            (apiwriter, api_image, digest, source),
            # no source named
            (writer, _name(), digest, None),
            # the digest is not in the source image
            (writer, _name(), sha256(b"unknown"), source),
            # a source image that does not exist, or a malformed one
            (writer, _name(), digest, "acme/web/nothing-here"),
            (writer, _name(), digest, "Not/A/Name"),
            # never across workspaces, not even for a superuser
            (root, f"globex/tools/img-{uuid.uuid4().hex[:8]}", digest, source),
        ]
        for client, dest, mounted, src in cases:
            r = _mount(client, dest, mounted, src)
            assert r.status_code == 202, (dest, src, r.text)
            assert "/blobs/uploads/" in r.headers["Location"]
            assert_error(client.head(f"/v2/{dest}/blobs/{mounted}"), 404, "BLOB_UNKNOWN")
            # The session it opened is a real one.
            assert client.get(r.headers["Location"]).status_code == 204
        reg.grant("acme/web", "apiwriter", "read")
        assert _mount(apiwriter, api_image, digest, source).status_code == 201
        assert apiwriter.get(f"/v2/{api_image}/blobs/{digest}").content == DATA
    assert_error(_mount(writer, _name(), "sha256:nope", source), 400, "DIGEST_INVALID")


# DELETE ---------------------------------------------------------------------------


def test_delete_blob_unlinks_it_from_that_image_only(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    first, second = _name(), _name()
    digest = upload(writer, first, DATA)
    upload(writer, second, DATA)
    r = writer.delete(f"/v2/{first}/blobs/{digest}")
    assert r.status_code == 202
    assert_error(writer.head(f"/v2/{first}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert writer.get(f"/v2/{second}/blobs/{digest}").content == DATA
    assert_error(writer.delete(f"/v2/{first}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_error(writer.delete(f"/v2/{first}/blobs/sha256:1"), 400, "DIGEST_INVALID")


# failed and stale uploads -----------------------------------------------------------


def test_upload_cut_short_leaves_nothing(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    digest = sha256(DATA)
    files_before = _upload_files(reg)
    raw_request(
        reg,
        f"POST /v2/{name}/blobs/uploads/?digest={digest}\nContent-Length: {len(DATA)}",
        DATA[:100],
    )
    _wait_for(lambda: _upload_files(reg) == files_before, "the cut upload to be cleaned up")
    assert_error(writer.head(f"/v2/{name}/blobs/{digest}"), 404, "BLOB_UNKNOWN")

    # A PATCH cut short is undone back to the last complete chunk.
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    writer.patch(location, content=DATA[:200], headers={"Content-Range": "0-199"})
    raw_request(
        reg,
        f"PATCH {location}\nContent-Length: 800\nContent-Range: 200-999",
        DATA[200:500],
    )
    _wait_for(
        lambda: (reg.data / "uploads" / location.rsplit("/", 1)[1]).stat().st_size == 200,
        "the cut chunk to be undone",
    )
    status = writer.get(location)
    assert status.headers["Range"] == "0-199"
    r = writer.put(location, params={"digest": digest}, content=DATA[200:])
    assert r.status_code == 201
    assert writer.get(f"/v2/{name}/blobs/{digest}").content == DATA


def test_stale_upload_sessions_expire(registry: RegistryServer) -> None:
    reg = registry
    with registry.client("writer") as writer:
        _expire(reg, writer)


def _expire(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    writer.patch(location, content=DATA[:100])
    session = location.rsplit("/", 1)[1]
    # A file with no session (a crash between the two) that has been there a while.
    orphan: Path = reg.data / "uploads" / str(uuid.uuid4())
    orphan.write_bytes(b"left over")
    old = time.time() - 2 * housekeeping.UPLOAD_TTL_MS / 1000
    os.utime(orphan, (old, old))

    registry = Registry.open(reg.data)
    try:
        # Within the time to live nothing goes.
        assert housekeeping.expire_uploads(registry) == 0
        assert session in _upload_files(reg)
        assert housekeeping.expire_uploads(registry, ttl_ms=0) >= 1
    finally:
        registry.close()
    assert session not in _upload_files(reg)
    assert not orphan.exists()
    assert_error(writer.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(
        writer.put(location, params={"digest": sha256(DATA[:100])}), 404, "BLOB_UPLOAD_UNKNOWN"
    )
