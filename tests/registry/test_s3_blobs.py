"""Blobs in S3-compatible object storage (SeaweedFS): uploads of every shape become
exactly one object per blob (multipart for big ones, staged bytes for chunks under
S3's 5 MiB part minimum), verified before they are visible; GET streams with Range
or redirects to a presigned URL; cancelled, failed and abandoned uploads leave no
multipart upload open and no staged bytes; a blob the GC frees leaves the bucket."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.core.digests import Digest
from app.registry import accounts, content, housekeeping, s3_uploads, uploads
from app.registry.accounts import Repository
from app.registry.db import schema
from app.registry.errors import BlobUploadUnknown, DigestInvalid, RangeInvalid
from app.registry.service import Registry
from tests.registry.oci_helpers import assert_error, running_registry, sha256, upload
from tests.support import oci
from tests.support.api import api
from tests.support.registry import CLI, RegistryServer, standard_registry
from tests.support.seaweedfs import SeaweedS3

MiB = 1024 * 1024
PREFIX = "reg"


@pytest.fixture(scope="module")
def s3_bucket(seaweed: SeaweedS3) -> str:
    return seaweed.create_bucket(f"s3-blobs-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3, s3_bucket: str
) -> Iterator[RegistryServer]:
    with running_registry(
        tmp_path_factory.mktemp("s3-blobs") / "data",
        blob_store=f"s3://{s3_bucket}/{PREFIX}",
        env=seaweed.env,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def writer(node: RegistryServer) -> Iterator[httpx.Client]:
    with node.client("writer") as client:
        yield client


def _name() -> str:
    return f"acme/web/img-{uuid.uuid4().hex[:8]}"


def _objects(seaweed: SeaweedS3, bucket: str, where: str = "blobs/") -> dict[str, int]:
    return seaweed.keys(bucket, f"{PREFIX}/{where}")


def _quiet(seaweed: SeaweedS3, bucket: str) -> None:
    """No upload left anything behind: no staged bytes, no open multipart upload."""
    assert _objects(seaweed, bucket, "uploads/") == {}
    assert seaweed.open_multipart_uploads(bucket) == []


def _chunked(client: httpx.Client, name: str, data: bytes, sizes: list[int]) -> httpx.Response:
    """POST, one PATCH per size (with Content-Range), then PUT with what is left."""
    r = client.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location, offset = r.headers["Location"], 0
    for size in sizes:
        piece = data[offset : offset + size]
        r = client.patch(
            location,
            content=piece,
            headers={
                "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert r.status_code == 202, r.text
        offset += len(piece)
        assert r.headers["Range"] == f"0-{offset - 1}"
        location = r.headers["Location"]
    return client.put(location, params={"digest": sha256(data)}, content=data[offset:])


@pytest.mark.parametrize(
    ("total", "chunks"),
    [
        (0, []),  # the empty blob
        (3000, []),  # everything in the PUT
        (3 * MiB + 7, [MiB, MiB, MiB]),  # chunks under the 5 MiB part minimum: staged
        (21 * MiB + 5, [6 * MiB, 2 * MiB, 10 * MiB]),  # parts, a staged tail, a last part
        (17 * MiB, [17 * MiB]),  # one PATCH of two full parts and a remainder part
    ],
)
def test_uploads_land_as_one_verified_object(
    node: RegistryServer,
    writer: httpx.Client,
    seaweed: SeaweedS3,
    s3_bucket: str,
    total: int,
    chunks: list[int],
) -> None:
    data = os.urandom(total)
    name = _name()
    before = _objects(seaweed, s3_bucket)
    r = _chunked(writer, name, data, chunks)
    assert r.status_code == 201, r.text
    digest = sha256(data)
    assert r.headers["Docker-Content-Digest"] == digest
    new = {k: v for k, v in _objects(seaweed, s3_bucket).items() if k not in before}
    assert list(new.values()) == [total], (_objects(seaweed, s3_bucket, ""), before)
    got = writer.get(f"/v2/{name}/blobs/{digest}")
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["Content-Length"] == str(total)
    _quiet(seaweed, s3_bucket)


def test_range_reads_and_head(node: RegistryServer, writer: httpx.Client) -> None:
    data = os.urandom(9 * MiB)
    name = _name()
    digest = upload(writer, name, data)
    r = writer.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=5000000-5000099"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 5000000-5000099/{len(data)}"
    assert r.content == data[5000000:5000100]
    r = writer.get(f"/v2/{name}/blobs/{digest}", headers={"Range": "bytes=-10"})
    assert r.status_code == 206
    assert r.content == data[-10:]
    head = writer.head(f"/v2/{name}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    beyond = writer.get(f"/v2/{name}/blobs/{digest}", headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"


def test_a_wrong_digest_leaves_nothing(
    node: RegistryServer, writer: httpx.Client, seaweed: SeaweedS3, s3_bucket: str
) -> None:
    before = _objects(seaweed, s3_bucket)
    data = os.urandom(12 * MiB)
    name = _name()
    r = writer.post(f"/v2/{name}/blobs/uploads/")
    location = r.headers["Location"]
    r = writer.patch(location, content=data[: 9 * MiB])
    assert r.status_code == 202
    r = writer.put(location, params={"digest": sha256(b"other")}, content=data[9 * MiB :])
    assert_error(r, 400, "DIGEST_INVALID")
    assert _objects(seaweed, s3_bucket) == before
    _quiet(seaweed, s3_bucket)
    # The session ended with it.
    assert_error(writer.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    # A monolithic upload with the wrong digest: the same.
    r = writer.post(
        f"/v2/{name}/blobs/uploads/", params={"digest": sha256(b"x")}, content=data[:1000]
    )
    assert_error(r, 400, "DIGEST_INVALID")
    assert _objects(seaweed, s3_bucket) == before
    _quiet(seaweed, s3_bucket)


def test_out_of_order_chunk_is_refused_and_the_upload_goes_on(
    node: RegistryServer, writer: httpx.Client, seaweed: SeaweedS3, s3_bucket: str
) -> None:
    data = os.urandom(2 * MiB)
    name = _name()
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    r = writer.patch(location, content=data[:MiB], headers={"Content-Range": f"0-{MiB - 1}"})
    assert r.status_code == 202
    r = writer.patch(location, content=data[:10], headers={"Content-Range": "5-14"})
    assert r.status_code == 416
    status = writer.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == f"0-{MiB - 1}"
    r = writer.put(location, params={"digest": sha256(data)}, content=data[MiB:])
    assert r.status_code == 201, r.text
    assert writer.get(f"/v2/{name}/blobs/{sha256(data)}").content == data
    _quiet(seaweed, s3_bucket)


def test_cancel_aborts_the_multipart_upload(
    node: RegistryServer, writer: httpx.Client, seaweed: SeaweedS3, s3_bucket: str
) -> None:
    name = _name()
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    assert writer.patch(location, content=os.urandom(9 * MiB)).status_code == 202
    assert seaweed.open_multipart_uploads(s3_bucket) != []
    assert _objects(seaweed, s3_bucket, "uploads/") != {}  # 1 MiB past the first part
    assert writer.delete(location).status_code == 204
    _quiet(seaweed, s3_bucket)
    assert_error(writer.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


def test_cancel_while_a_chunk_streams_in_ends_it_and_leaves_nothing(
    node: RegistryServer, writer: httpx.Client, seaweed: SeaweedS3, s3_bucket: str
) -> None:
    # The DELETE does not wait for the PATCH streaming in: the PATCH goes on into a
    # session that is gone, and must neither land nor leave a multipart upload open.
    name = _name()
    location = writer.post(f"/v2/{name}/blobs/uploads/").headers["Location"]
    sent, cancelled = threading.Event(), threading.Event()

    def body() -> Iterator[bytes]:
        yield os.urandom(MiB)
        sent.set()  # the first MiB is on its way: the node streams this PATCH in
        assert cancelled.wait(60)
        for _ in range(8):  # past a part's size: the multipart upload begins now
            yield os.urandom(MiB)

    with ThreadPoolExecutor(1) as pool, node.client("writer") as other:
        patch = pool.submit(other.patch, location, content=body())
        assert sent.wait(60)
        assert writer.delete(location).status_code == 204
        cancelled.set()
        assert_error(patch.result(timeout=120), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(writer.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    _quiet(seaweed, s3_bucket)


def test_gc_frees_the_object(tmp_path: Path, seaweed: SeaweedS3, bucket: str) -> None:
    with (
        running_registry(
            tmp_path / "data",
            blob_store=f"s3://{bucket}",
            env=seaweed.env,
            review_delay=0,
            upload_grace=0,
        ) as server,
        server.client("writer") as writer,
    ):
        layer = oci.random_layer(300_000, "s3-gc")
        img = oci.image([layer])
        oci.push(writer, "acme/web/gc", img, "v1")
        assert sorted(seaweed.keys(bucket).values()) == sorted(b.size for b in img.blobs)
        assert writer.delete("/v2/acme/web/gc/manifests/v1").status_code == 202
        deadline = time.monotonic() + 60
        while seaweed.keys(bucket) and time.monotonic() < deadline:
            time.sleep(0.2)  # the GC worker reviews at once: no delay, no grace
        assert seaweed.keys(bucket) == {}
        assert writer.get(f"/v2/acme/web/gc/blobs/{layer.digest}").status_code == 404


def test_redirected_blob_gets(tmp_path: Path, seaweed: SeaweedS3, bucket: str) -> None:
    with (
        running_registry(
            tmp_path / "data",
            blob_store=f"s3://{bucket}",
            env=seaweed.env,
            extra_args=["--redirect-blobs"],
        ) as server,
        server.client("writer") as c,
    ):
        data = os.urandom(200_000)
        digest = upload(c, "acme/web/redirected", data)
        r = c.get(f"/v2/acme/web/redirected/blobs/{digest}")
        assert r.status_code == 307
        location = r.headers["Location"]
        assert location.startswith(seaweed.endpoint)
        assert httpx.get(location).content == data  # signed: no credentials needed
        ranged = httpx.get(location, headers={"Range": "bytes=100-199"})
        assert ranged.status_code == 206
        assert ranged.content == data[100:200]
        # HEAD answers here, and only readers of the image get a URL.
        assert c.head(f"/v2/acme/web/redirected/blobs/{digest}").status_code == 200
        with server.client("outsider") as other:
            assert other.get(f"/v2/acme/web/redirected/blobs/{digest}").status_code in (401, 403)


def test_abandoned_uploads_are_aborted(tmp_path: Path, seaweed: SeaweedS3, bucket: str) -> None:
    with (
        running_registry(
            tmp_path / "data",
            blob_store=f"s3://{bucket}",
            env=seaweed.env,
            extra_args=["--upload-ttl", "2"],
        ) as server,
        server.client("writer") as c,
    ):
        location = c.post("/v2/acme/web/abandoned/blobs/uploads/").headers["Location"]
        # A part and staged bytes (test_cancel_aborts_the_multipart_upload sees them).
        assert c.patch(location, content=os.urandom(9 * MiB)).status_code == 202
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            seaweed.open_multipart_uploads(bucket) or seaweed.keys(bucket, "uploads/")
        ):
            time.sleep(0.2)
        assert seaweed.open_multipart_uploads(bucket) == []
        assert seaweed.keys(bucket, "uploads/") == {}
        assert_error(c.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
        assert seaweed.keys(bucket, "blobs/") == {}


def test_leftovers_of_a_killed_node_are_aborted(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    """A multipart upload and staged bytes that no session holds (a node killed
    between its S3 call and its row) go once they are older than the TTL."""
    client = seaweed.client()
    orphan = client.create_multipart_upload(Bucket=bucket, Key=f"blobs/1/{uuid.uuid4()}")
    client.put_object(Bucket=bucket, Key=f"uploads/{uuid.uuid4()}/3", Body=b"x" * 10)
    with running_registry(
        tmp_path / "data",
        blob_store=f"s3://{bucket}",
        env=seaweed.env,
        extra_args=["--upload-ttl", "1"],
    ):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            seaweed.open_multipart_uploads(bucket) or seaweed.keys(bucket, "uploads/")
        ):
            time.sleep(0.2)
    assert orphan["UploadId"] not in seaweed.open_multipart_uploads(bucket)
    assert seaweed.keys(bucket, "uploads/") == {}


def _cli(*args: str, env: dict[str, str], stdout: bool = False) -> tuple[int, str]:
    """Run berth-registry with only ``env``'s AWS variables: (status, stderr or stdout)."""
    result = subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | env,
        timeout=600,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr if stdout else result.stderr


@pytest.mark.parametrize(
    ("command", "case"),
    [
        ("serve", "missing bucket"),
        ("serve", "wrong secret"),
        ("serve", "no credentials"),
        # The other commands open the store the same way: one case each.
        ("gc", "missing bucket"),
        ("fsck", "wrong secret"),
        ("demo", "no credentials"),
    ],
)
def test_a_bucket_it_cannot_use_is_one_line_and_exit_2(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str, command: str, case: str
) -> None:
    url, env, says = {
        "missing bucket": (
            f"s3://no-such-bucket-{uuid.uuid4().hex[:6]}",
            seaweed.env,
            "does not exist",
        ),
        "wrong secret": (
            f"s3://{bucket}",
            {**seaweed.env, "AWS_SECRET_ACCESS_KEY": "wrong"},
            "denied",
        ),
        "no credentials": (
            f"s3://{bucket}",
            {"AWS_ENDPOINT_URL": seaweed.endpoint, "AWS_REGION": "us-east-1"},
            "no credentials",
        ),
    }[case]
    extra = {"gc": ["--once"], "serve": ["--port", "0"]}.get(command, [])
    data = ["--data", str(tmp_path / "data")]
    maintenance = command in ("gc", "fsck")  # these need a registry to look after
    if maintenance:
        assert _cli("init", *data, env={})[0] == 0
    status, err = _cli(command, *data, "--blob-store", url, *extra, env=env)
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert says in lines[0], err
    # Nothing was made of the data directory's registry on the way.
    assert (tmp_path / "data" / "registry.db").exists() == maintenance
    assert seaweed.keys(bucket) == {}


def test_uploaded_bytes_match_the_digest_in_the_bucket(
    node: RegistryServer, writer: httpx.Client, seaweed: SeaweedS3, s3_bucket: str
) -> None:
    """What the bucket holds under a blob's key hashes to the blob's digest."""
    data = os.urandom(11 * MiB)
    digest = upload(writer, _name(), data)
    client = seaweed.client()
    for key, size in _objects(seaweed, s3_bucket).items():
        if size == len(data):
            body = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
            assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
            return
    raise AssertionError("object not found")


def test_fsck_compares_bucket_and_database(tmp_path: Path, seaweed: SeaweedS3, bucket: str) -> None:
    data = tmp_path / "data"
    store = ["--blob-store", f"s3://{bucket}/p"]
    with running_registry(data, blob_store=f"s3://{bucket}/p", env=seaweed.env) as server:
        with server.client("writer") as c:
            img = oci.image([oci.random_layer(40_000, "fsck-1"), oci.random_layer(9000, "fsck-2")])
            oci.push(c, "acme/web/app", img, "v1")
        status, out = _cli("fsck", "--data", str(data), *store, env=seaweed.env, stdout=True)
        assert status == 0, out
        assert "fsck: clean (3 objects, 3 blob rows" in out
        client = seaweed.client()
        # A leaked object (a crash between commit and delete), a stray key, a lost object.
        leaked = f"p/blobs/1/{uuid.uuid4()}"
        client.put_object(Bucket=bucket, Key=leaked, Body=b"leaked bytes")
        client.put_object(Bucket=bucket, Key="p/blobs/notes.txt", Body=b"hello")
        # A multipart upload and staged bytes of no upload session (a node killed
        # between its S3 call and its row).
        mpu = client.create_multipart_upload(Bucket=bucket, Key=f"p/blobs/1/{uuid.uuid4()}")
        staged = f"p/uploads/{uuid.uuid4()}/2"
        client.put_object(Bucket=bucket, Key=staged, Body=b"staged")
        lost_size = img.blobs[-1].size
        lost = next(k for k, v in seaweed.keys(bucket, "p/blobs/").items() if v == lost_size)
        client.delete_object(Bucket=bucket, Key=lost)
        status, out = _cli(
            "fsck", "--data", str(data), *store, "--repair", "--orphan-min-age", "0",
            env=seaweed.env, stdout=True,
        )  # fmt: skip
        assert status == 4, out
        assert f"orphan: object {leaked} (12 bytes) has no blob row (repaired)" in out
        assert "stray: unexpected entry s3://" in out
        assert "notes.txt" in out
        assert f"missing: blob {img.blobs[-1].digest} of workspace 1" in out
        assert f"orphan: multipart upload {mpu['UploadId']} of s3://{bucket}/" in out
        assert f"orphan: staged upload bytes s3://{bucket}/{staged} belongs to no" in out
        assert leaked not in seaweed.keys(bucket)
        assert staged not in seaweed.keys(bucket)
        assert seaweed.open_multipart_uploads(bucket) == []
        # A young orphan is left alone: it may be an upload committing right now.
        client.put_object(Bucket=bucket, Key=leaked, Body=b"young")
        client.delete_object(Bucket=bucket, Key="p/blobs/notes.txt")
        client.put_object(Bucket=bucket, Key=lost, Body=img.blobs[-1].data)
        status, out = _cli("fsck", "--data", str(data), *store, env=seaweed.env, stdout=True)
        assert status == 0, out
        assert f"note: young orphan {leaked}" in out
        status, out = _cli(
            "fsck", "--data", str(data), *store, "--verify-content", env=seaweed.env, stdout=True
        )
        assert status == 0, out


def test_demo_seeds_into_the_bucket(tmp_path: Path, seaweed: SeaweedS3, bucket: str) -> None:
    data = str(tmp_path / "demo")
    store = ["--blob-store", f"s3://{bucket}"]
    status, out = _cli("demo", "--data", data, *store, "--days", "7", env=seaweed.env, stdout=True)
    assert status == 0, out
    objects = seaweed.keys(bucket, "blobs/")
    assert len(objects) > 20
    assert not list((tmp_path / "demo" / "blobs").rglob("*/*/*"))  # nothing on disk
    status, out = _cli(
        "fsck", "--data", data, *store, "--verify-content", env=seaweed.env, stdout=True
    )
    assert status == 0, out
    assert f"fsck: clean ({len(objects)} objects" in out


def test_a_command_naming_another_store_than_the_registrys_stops_touching_nothing(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    """The first serve records the bucket; a gc, fsck or serve that names another
    store (or none: the data directory) says which one to name and exits 2."""
    data = tmp_path / "data"
    registry = running_registry(data, blob_store=f"s3://{bucket}/p", env=seaweed.env)
    with registry as server, server.client("writer") as c:
        img = oci.image([oci.random_layer(30_000, "claim-1")])
        oci.push(c, "acme/web/app", img, "v1")
        # Untagged and unreferenced: due for collection once reviewed.
        assert c.delete(f"/v2/acme/web/app/manifests/{img.digest}").status_code == 202
    objects = seaweed.keys(bucket, "p/")
    assert len(objects) == 2
    at = ["--data", str(data)]
    for argv in (
        ["gc", *at, "--once", "--ignore-review-delay"],
        ["fsck", *at, "--repair"],
        ["gc", *at, "--once", "--blob-store", f"s3://{bucket}/other"],
        ["serve", *at, "--port", "0", "--blob-store", f"s3://{bucket}"],
        ["demo", *at, "--blob-store", f"file://{tmp_path / 'blobs'}"],
    ):
        status, err = _cli(*argv, env=seaweed.env)
        assert status == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert f"this registry's blobs are in s3://{bucket}/p, not in " in lines[0], err
        assert f"run it with --blob-store s3://{bucket}/p" in lines[0], err
    # Nothing was collected or repaired: the rows still find every object.
    assert seaweed.keys(bucket, "p/") == objects
    status, out = _cli(
        "fsck", *at, "--blob-store", f"s3://{bucket}/p", env=seaweed.env, stdout=True
    )
    assert status == 0, out
    assert "fsck: clean (2 objects, 2 blob rows" in out
    # The same store spelled with a trailing slash is the same store.
    status, out = _cli(
        "gc", *at, "--once", "--ignore-review-delay", "--blob-store", f"s3://{bucket}/p/",
        env=seaweed.env, stdout=True,
    )  # fmt: skip
    assert status == 0, out


def test_init_records_where_moved_blobs_now_are(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    data = tmp_path / "data"
    registry = running_registry(data, blob_store=f"s3://{bucket}/old", env=seaweed.env)
    with registry as server, server.client("writer") as c:
        oci.push(c, "acme/web/app", oci.image([oci.random_layer(20_000, "moved")]), "v1")
    client = seaweed.client()
    for key in seaweed.keys(bucket, "old/"):  # what an admin's `aws s3 sync` does
        client.copy_object(
            Bucket=bucket, Key="new/" + key[4:], CopySource={"Bucket": bucket, "Key": key}
        )
    at = ["--data", str(data)]
    new = ["--blob-store", f"s3://{bucket}/new"]
    assert _cli("fsck", *at, *new, env=seaweed.env)[0] == 2
    status, out = _cli("init", *at, *new, env=seaweed.env, stdout=True)
    assert status == 0, out
    assert f"its blobs are now in s3://{bucket}/new" in out
    status, out = _cli("fsck", *at, *new, "--verify-content", env=seaweed.env, stdout=True)
    assert status == 0, out
    assert "fsck: clean (2 objects" in out
    status, err = _cli("fsck", *at, "--blob-store", f"s3://{bucket}/old", env=seaweed.env)
    assert status == 2, err
    assert f"this registry's blobs are in s3://{bucket}/new" in err
    # init without --blob-store leaves the record alone.
    status, out = _cli("init", *at, env=seaweed.env, stdout=True)
    assert status == 0, out
    assert "now in" not in out
    assert _cli("fsck", *at, *new, env=seaweed.env)[0] == 0


def test_a_registry_on_a_directory_refuses_a_bucket(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    at = ["--data", str(tmp_path / "data")]
    assert _cli("init", *at, env={})[0] == 0
    status, out = _cli("gc", *at, "--once", env={}, stdout=True)  # records the directory
    assert status == 0, out
    status, err = _cli("gc", *at, "--once", "--blob-store", f"s3://{bucket}", env=seaweed.env)
    assert status == 2, err
    assert "this registry's blobs are in a directory (file://), not in s3://" in err
    assert "run it with no --blob-store (its data directory) or --blob-store file:///" in err
    assert seaweed.keys(bucket) == {}


def test_an_installation_without_the_s3_extra_says_so(tmp_path: Path) -> None:
    """Without boto3 (Berth installed without [s3]): one line, exit 2, not a traceback."""
    script = (
        "import sys; sys.modules['boto3'] = None\n"  # what a missing package looks like
        "from app.registry.cli import main\n"
        f"sys.exit(main(['serve', '--data', {str(tmp_path / 'data')!r}, '--port', '0',"
        " '--blob-store', 's3://bucket']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no S3 support (boto3 is missing)" in lines[0]
    assert "pip install 'berth[s3]'" in lines[0]
    assert not (tmp_path / "data").exists()


def test_deleting_an_image_aborts_its_uploads_in_the_bucket(
    node: RegistryServer, writer: httpx.Client, seaweed: SeaweedS3, s3_bucket: str
) -> None:
    """The multipart upload and the staged bytes of an upload into a deleted image go
    with the delete, not a day later with the housekeeping."""
    name = _name()
    oci.push(writer, name, oci.image([oci.random_layer(1000, "abort-img")]), "v1")
    locations = []
    for size in (6 * MiB, MiB):  # a part of a multipart upload; staged bytes
        r = writer.post(f"/v2/{name}/blobs/uploads/")
        assert r.status_code == 202, r.text
        r = writer.patch(
            r.headers["Location"],
            content=os.urandom(size),
            headers={"Content-Range": f"0-{size - 1}", "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 202, r.text
        locations.append(r.headers["Location"])
    assert len(seaweed.open_multipart_uploads(s3_bucket)) == 1
    assert len(_objects(seaweed, s3_bucket, "uploads/")) == 1
    with api(node) as c:
        images = c.get("/workspaces/acme/images", params={"q": name.rsplit("/", 1)[1]}).json()[
            "items"
        ]
        (image_id,) = [i["id"] for i in images if i["full_name"] == name]
        r = c.delete(f"/images/{image_id}", headers={"If-Match": "*"})
        assert r.status_code == 204, r.text
    _quiet(seaweed, s3_bucket)
    for location in locations:
        assert_error(writer.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


def _chunk(client: httpx.Client, location: str, offset: int, size: int) -> httpx.Response:
    """A PATCH of ``size`` random bytes at ``offset``."""
    return client.patch(
        location,
        content=os.urandom(size),
        headers={
            "Content-Range": f"{offset}-{offset + size - 1}",
            "Content-Type": "application/octet-stream",
        },
    )


def _begun(client: httpx.Client, size: int) -> str:
    """A new upload with a first chunk of ``size`` bytes; its Location."""
    r = client.post(f"/v2/{_name()}/blobs/uploads/")
    assert r.status_code == 202, r.text
    r = _chunk(client, r.headers["Location"], 0, size)
    assert r.status_code == 202, r.text
    return r.headers["Location"]


def test_a_chunk_into_an_aborted_multipart_upload_is_upload_unknown(
    writer: httpx.Client, seaweed: SeaweedS3, s3_bucket: str
) -> None:
    """A multipart upload aborted under a session (what a cancel or an image delete
    on another node does while a chunk is on its way, or a bucket rule behind
    Berth's back): the chunk answers 404 BLOB_UPLOAD_UNKNOWN, not 503. The client's
    cancel then leaves nothing behind."""
    location = _begun(writer, 6 * MiB)
    _abort_the_multipart_upload(seaweed, s3_bucket)
    assert_error(_chunk(writer, location, 6 * MiB, 6 * MiB), 404, "BLOB_UPLOAD_UNKNOWN")
    assert writer.delete(location).status_code == 204
    _quiet(seaweed, s3_bucket)


def test_a_put_onto_an_aborted_multipart_upload_is_upload_unknown(
    writer: httpx.Client, seaweed: SeaweedS3, s3_bucket: str
) -> None:
    """The same, found by the final PUT (an empty one, as docker sends): 404
    BLOB_UPLOAD_UNKNOWN, not 503 for every retry until the upload expires."""
    location = _begun(writer, 6 * MiB)
    _abort_the_multipart_upload(seaweed, s3_bucket)
    r = writer.put(location, params={"digest": sha256(b"anything")})
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    assert writer.delete(location).status_code == 204
    _quiet(seaweed, s3_bucket)


def _abort_the_multipart_upload(seaweed: SeaweedS3, bucket: str) -> None:
    """Abort the one open multipart upload, behind Berth's back."""
    client = seaweed.client()
    (upload,) = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def test_a_chunk_after_staged_bytes_went_missing_is_upload_unknown(
    writer: httpx.Client, seaweed: SeaweedS3, s3_bucket: str
) -> None:
    """The staged bytes of a session removed behind Berth's back (a bucket rule, a
    hand): the next chunk answers 404 BLOB_UPLOAD_UNKNOWN, not 503 (which would have
    the client retry what can never succeed). The client's cancel then leaves
    nothing behind."""
    location = _begun(writer, MiB)
    (staged,) = _objects(seaweed, s3_bucket, "uploads/")
    seaweed.client().delete_object(Bucket=s3_bucket, Key=staged)
    assert_error(_chunk(writer, location, MiB, MiB), 404, "BLOB_UPLOAD_UNKNOWN")
    assert writer.delete(location).status_code == 204
    _quiet(seaweed, s3_bucket)


def test_a_bucket_gone_is_unavailable_not_an_unknown_blob(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    """The bucket deleted behind Berth's back (or a node pointed at the wrong one):
    a pull and a chunk answer 503 UNAVAILABLE, as for any store failure, not 404
    BLOB_UNKNOWN / BLOB_UPLOAD_UNKNOWN, which say the blob or the upload is gone and
    have the client start again. What the database holds stays."""
    server = standard_registry(
        tmp_path / "data",
        blob_store=f"s3://{bucket}/{PREFIX}",
        env=seaweed.env,
        extra_args=["--blob-cache-size", "0"],  # every read goes to the bucket
    ).start()
    try:
        with server.client("writer") as writer:
            name = _name()
            digest = upload(writer, name, os.urandom(3000))
            location = _begun(writer, MiB)  # its bytes are staged in the bucket
            seaweed.client().delete_bucket(Bucket=bucket)

            r = writer.get(f"/v2/{name}/blobs/{digest}")
            assert_error(r, 503, "UNAVAILABLE")
            assert_error(_chunk(writer, location, MiB, MiB), 503, "UNAVAILABLE")
            assert writer.head(f"/v2/{name}/blobs/{digest}").status_code == 200
            status = writer.get(location)
            assert status.status_code == 204, status.text
            assert status.headers["Range"] == f"0-{MiB - 1}"
    finally:
        server.stop()


def _in_process(tmp_path: Path, bucket: str) -> Registry:
    """A node as serve opens it, in this process (the caller sets the store's
    environment); several on one data directory share its database."""
    return Registry.open(tmp_path / "data", blob_store=f"s3://{bucket}")


@pytest.fixture
def nodes(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Registry, Registry]]:
    """Two nodes as serve opens them, in this process, on one database and one
    bucket (a bucket of the test's own)."""
    for env_name, value in seaweed.env.items():
        monkeypatch.setenv(env_name, value)
    a, b = _in_process(tmp_path, bucket), _in_process(tmp_path, bucket)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _repository(reg: Registry) -> Repository:
    with reg.db.write() as conn:
        accounts.add_workspace(conn, "acme")
        accounts.add_project(conn, "acme", "PLAT")
        accounts.add_repository(conn, "acme", "web", "PLAT")
        return accounts.get_repository(conn, "acme", "web")


def _new_session(reg: Registry, repo: Repository) -> str:
    with reg.db.write() as conn:
        image = content.ensure_image(conn, repo, "nodes", 0)
        return uploads.create_session(conn, image.id, image.workspace_id, 0)


def _session(reg: Registry, session_id: str) -> uploads.Session:
    with reg.db.read() as conn:
        session = uploads.get_session(conn, session_id)
    assert session is not None
    return session


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _patch(reg: Registry, session: uploads.Session, data: bytes) -> int:
    """A PATCH of ``data`` on ``reg``'s node, of the session as read as ``session``."""

    async def go() -> int:
        state = reg.uploads.get(session.id)
        chunk = await s3_uploads.receive(reg, session, state, _body(data), len(data), final=False)
        return s3_uploads.land(reg, chunk)

    return asyncio.run(go())


def _put(
    reg: Registry,
    session: uploads.Session,
    data: bytes,
    repo: Repository,
    digest: Digest | None = None,
) -> None:
    """A final PUT with no bytes of its own on ``reg``'s node, of the session as read
    as ``session``, for an upload of ``data`` (its digest, unless ``digest``)."""
    state = reg.uploads.get(session.id)
    said = digest or Digest.parse(sha256(data))
    asyncio.run(s3_uploads.finish(reg, session, state, _body(b""), 0, said, repo, "nodes"))


def _the_blob(seaweed: SeaweedS3, bucket: str) -> tuple[str, bytes]:
    """The one object in the bucket: its key and bytes."""
    (key,) = seaweed.keys(bucket)
    return key, seaweed.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def test_a_chunk_that_lost_the_race_to_another_chunk_is_told_the_offset(
    nodes: tuple[Registry, Registry], seaweed: SeaweedS3, bucket: str
) -> None:
    """Two chunks of one upload on two nodes at once (a client that does not wait):
    one lands and replaces the staged bytes the other read the session for. The
    late one is refused with 416 and the session's offset, and the upload goes on;
    it is not taken for one whose bytes are gone."""
    reg = nodes[0]
    session_id = _new_session(reg, _repository(reg))
    assert _patch(reg, _session(reg, session_id), b"a" * MiB) == MiB
    stale = _session(reg, session_id)  # what the late chunk's node read
    assert _patch(reg, _session(reg, session_id), b"b" * MiB) == 2 * MiB
    with pytest.raises(RangeInvalid) as refused:
        _patch(reg, stale, b"c" * MiB)
    assert refused.value.headers == {"Range": f"0-{2 * MiB - 1}"}
    assert _session(reg, session_id).size == 2 * MiB  # the upload goes on


def test_two_chunks_from_one_offset_the_loser_leaves_the_winners_bytes(
    nodes: tuple[Registry, Registry], seaweed: SeaweedS3, bucket: str
) -> None:
    """Two chunks of one upload from the same offset, on two nodes (a retry through
    another node while the first try still streams). Both leave bytes staged; the
    first to land wins, the other is refused with 416 and cleans up its own bytes
    only. The upload goes on from the winner's and its blob is exactly the bytes
    that landed (staged objects were named by version, which both chose: the
    loser deleted the winner's bytes and the upload could not go on)."""
    a, b = nodes
    repo = _repository(a)
    session_id = _new_session(a, repo)
    first, winner, loser, last = (os.urandom(MiB) for _ in range(4))
    assert _patch(a, _session(a, session_id), first) == MiB
    both_read = _session(a, session_id)

    async def received(reg: Registry, data: bytes) -> Any:
        state = reg.uploads.get(session_id)
        return await s3_uploads.receive(reg, both_read, state, _body(data), len(data), final=False)

    won = asyncio.run(received(a, winner))
    lost = asyncio.run(received(b, loser))
    assert s3_uploads.land(a, won) == 2 * MiB
    with pytest.raises(RangeInvalid):
        s3_uploads.land(b, lost)
    assert len(seaweed.keys(bucket, "uploads/")) == 1  # the winner's staged bytes

    assert _patch(b, _session(b, session_id), last) == 3 * MiB
    data = first + winner + last
    _put(a, _session(a, session_id), data, repo)
    assert _the_blob(seaweed, bucket)[1] == data


@pytest.mark.parametrize("left", ["none", "an earlier chunk's"])
def test_an_upload_staged_before_names_were_recorded_goes_on(
    nodes: tuple[Registry, Registry],
    seaweed: SeaweedS3,
    bucket: str,
    left: str,
) -> None:
    """A chunk landed by a node without staged names (before migration 0014, or
    during a rolling upgrade, which leaves an earlier chunk's name in place): its
    bytes are under the version alone, and the upload goes on from them."""
    reg = nodes[0]
    repo = _repository(reg)
    session_id = _new_session(reg, repo)
    first, last = os.urandom(MiB), os.urandom(MiB)
    assert _patch(reg, _session(reg, session_id), first) == MiB
    (named,) = seaweed.keys(bucket, "uploads/")
    old_key = f"uploads/{session_id}/{_session(reg, session_id).s3.version}"
    client = seaweed.client()
    client.copy_object(Bucket=bucket, Key=old_key, CopySource={"Bucket": bucket, "Key": named})
    client.delete_object(Bucket=bucket, Key=named)
    with reg.db.write() as conn:
        conn.execute(
            update(schema.upload_sessions)
            .where(schema.upload_sessions.c.id == session_id)
            .values(staged_name=None if left == "none" else "0-0123456789abcdef")
        )
    assert _patch(reg, _session(reg, session_id), last) == 2 * MiB
    assert old_key not in seaweed.keys(bucket, "uploads/")  # read, then forgotten
    _put(reg, _session(reg, session_id), first + last, repo)
    assert _the_blob(seaweed, bucket)[1] == first + last


@pytest.mark.parametrize("claimed", ["right", "wrong"])
def test_a_put_racing_a_committed_put_leaves_its_blob(
    nodes: tuple[Registry, Registry],
    seaweed: SeaweedS3,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    claimed: str,
) -> None:
    """Two final PUTs of one upload on two nodes (a retry through another node while
    the first still commits) both complete its multipart upload: AWS S3 answers a
    second complete of the same parts with 200 (SeaweedFS, with NoSuchUpload; node B
    is given S3's answer here, and node A's whole PUT runs meanwhile). A's commits.
    B's is refused, 404 for the same digest and 400 DIGEST_INVALID for another, and
    the object A's blob row points at stays (B deleted it: a blob lost)."""
    a, b = nodes
    repo = _repository(a)
    session_id = _new_session(a, repo)
    data = os.urandom(6 * MiB)
    digest = Digest.parse(sha256(data))
    assert _patch(a, _session(a, session_id), data) == 6 * MiB
    read_by_a, read_by_b = _session(a, session_id), _session(b, session_id)

    def completed_again(*_args: object) -> None:
        _put(a, read_by_a, data, repo)

    monkeypatch.setattr(b.store, "complete_multipart", completed_again)
    said = digest if claimed == "right" else Digest.parse(sha256(b"other bytes"))
    refused = BlobUploadUnknown if claimed == "right" else DigestInvalid
    with pytest.raises(refused):
        _put(b, read_by_b, data, repo, said)
    with a.db.read() as conn:
        blob = content.workspace_blob(conn, repo.workspace_id, str(digest))
    assert blob is not None
    key, stored = _the_blob(seaweed, bucket)
    assert key.endswith(blob.generation)
    assert stored == data


def test_a_node_forgets_the_sessions_that_ended_on_another(
    nodes: tuple[Registry, Registry], seaweed: SeaweedS3, bucket: str
) -> None:
    """Behind a load balancer, a session's chunks may go to node A and its PUT (or
    its cancel) to node B, which drops only its own state of it. A's housekeeping
    drops A's: without it, every such upload left its state on A for good."""
    a, b = nodes
    repo = _repository(a)
    finished, cancelled, going_on = (_new_session(a, repo) for _ in range(3))
    data = os.urandom(MiB)
    for session_id in (finished, cancelled, going_on):
        assert _patch(a, _session(a, session_id), data) == MiB
    _put(b, _session(b, finished), data, repo)
    s3_uploads.cancel(b, cancelled)
    assert sorted(a.uploads.session_ids()) == sorted([finished, cancelled, going_on])
    assert b.uploads.session_ids() == []

    assert housekeeping.forget_ended_sessions(a) == 2
    assert a.uploads.session_ids() == [going_on]
    assert housekeeping.forget_ended_sessions(a) == 0
    # The open one goes on where it was, on either node.
    assert _patch(b, _session(b, going_on), data) == 2 * MiB
