"""The node's cache of blobs it read whole from object storage (SeaweedFS).

A copy is seen from outside by taking the object out of the bucket behind the
registry's back: a blob the node copied is still served, whole and by range; one
it did not copy is "gone". Only whole copies are kept, the least recently used go
first, and a blob the GC removes is gone from the node's answers and its memory."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.registry.blob_cache import BlobCache
from app.registry.blobstore import BlobReader, ObjectRef
from app.registry.s3store import S3BlobStore
from tests.registry.oci_helpers import assert_error, running_registry, upload
from tests.support import oci
from tests.support.registry import CLI
from tests.support.seaweedfs import SeaweedS3

MiB = 1024 * 1024
REPO = "acme/web/cached"


@contextmanager
def _node(
    data: Path, seaweed: SeaweedS3, bucket: str, *args: str, gc_at_once: bool = False
) -> Iterator[httpx.Client]:
    """A node and its writer. Blobs no image holds stay for the GC's usual grace,
    unless ``gc_at_once``."""
    timing = {"review_delay": 0, "upload_grace": 0} if gc_at_once else {}
    with (
        running_registry(
            data, blob_store=f"s3://{bucket}", env=seaweed.env, extra_args=list(args), **timing
        ) as server,
        server.client("writer") as writer,
    ):
        yield writer


def _empty_the_bucket(seaweed: SeaweedS3, bucket: str) -> None:
    """Take every object out behind the registry's back (its rows stay)."""
    client = seaweed.client()
    for key in seaweed.keys(bucket):
        client.delete_object(Bucket=bucket, Key=key)
    assert seaweed.keys(bucket) == {}


def test_a_blob_read_whole_is_served_by_the_node_that_read_it(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    data = tmp_path / "data"
    with _node(data, seaweed, bucket) as writer:
        read = os.urandom(5 * MiB + 3)
        unread = os.urandom(MiB)
        read_digest = upload(writer, REPO, read)
        unread_digest = upload(writer, REPO, unread)
        # A range read is not the whole object: it leaves no copy.
        r = writer.get(f"/v2/{REPO}/blobs/{unread_digest}", headers={"Range": "bytes=0-99"})
        assert r.status_code == 206
        assert writer.get(f"/v2/{REPO}/blobs/{read_digest}").content == read

        _empty_the_bucket(seaweed, bucket)

        r = writer.get(f"/v2/{REPO}/blobs/{read_digest}")
        assert r.status_code == 200
        assert r.content == read
        assert r.headers["Content-Length"] == str(len(read))
        assert r.headers["Docker-Content-Digest"] == read_digest
        ranged = {"Range": "bytes=4000000-4000009"}
        r = writer.get(f"/v2/{REPO}/blobs/{read_digest}", headers=ranged)
        assert r.status_code == 206
        assert r.headers["Content-Range"] == f"bytes 4000000-4000009/{len(read)}"
        assert r.content == read[4000000:4000010]
        r = writer.get(f"/v2/{REPO}/blobs/{read_digest}", headers={"Range": "bytes=-7"})
        assert r.content == read[-7:]
        # The blob nobody read whole was never copied: it is gone with its object.
        assert_error(writer.get(f"/v2/{REPO}/blobs/{unread_digest}"), 404, "BLOB_UNKNOWN")
        # Permissions still come from the database, not from the copy.
        with httpx.Client(base_url=writer.base_url) as anonymous:
            assert anonymous.get(f"/v2/{REPO}/blobs/{read_digest}").status_code == 401


def test_a_pull_cut_short_leaves_no_copy(tmp_path: Path, seaweed: SeaweedS3, bucket: str) -> None:
    with _node(tmp_path / "data", seaweed, bucket) as writer:
        # More than the sockets between can hold: the node cannot send it all unread.
        blob = os.urandom(48 * MiB)
        digest = upload(writer, REPO, blob)
        with writer.stream("GET", f"/v2/{REPO}/blobs/{digest}") as r:
            assert r.status_code == 200
            first = next(r.iter_bytes(MiB))
            assert first == blob[: len(first)]
        _empty_the_bucket(seaweed, bucket)
        assert_error(writer.get(f"/v2/{REPO}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def test_the_least_recently_used_copies_go_first(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    data = tmp_path / "data"
    # 4 MiB: room for four of these blobs; one blob may take at most a quarter.
    with _node(data, seaweed, bucket, "--blob-cache-size", "4MiB") as writer:
        blobs = [os.urandom(900_000 + i) for i in range(6)]
        digests = [upload(writer, REPO, b) for b in blobs]
        big = os.urandom(MiB + 1)
        big_digest = upload(writer, REPO, big)
        for digest in digests[:4]:
            assert writer.get(f"/v2/{REPO}/blobs/{digest}").status_code == 200
        # Reading 0 again makes 1 the oldest; reading 4 and 5 pushes out 1 and 2.
        assert writer.get(f"/v2/{REPO}/blobs/{digests[0]}").status_code == 200
        for digest in digests[4:]:
            assert writer.get(f"/v2/{REPO}/blobs/{digest}").status_code == 200
        assert writer.get(f"/v2/{REPO}/blobs/{big_digest}").content == big

        _empty_the_bucket(seaweed, bucket)

        for i, (blob, digest) in enumerate(zip(blobs, digests, strict=True)):
            r = writer.get(f"/v2/{REPO}/blobs/{digest}")
            if i in (1, 2):
                assert_error(r, 404, "BLOB_UNKNOWN")
            else:
                assert r.content == blob, i
        # Over a quarter of the cache: never copied.
        assert_error(writer.get(f"/v2/{REPO}/blobs/{big_digest}"), 404, "BLOB_UNKNOWN")


def test_a_blob_the_gc_removes_is_gone(tmp_path: Path, seaweed: SeaweedS3, bucket: str) -> None:
    with _node(tmp_path / "data", seaweed, bucket, gc_at_once=True) as writer:
        layer = oci.random_layer(300_000, "cache-gc")
        img = oci.image([layer])
        oci.push(writer, "acme/web/gc", img, "v1")
        assert writer.get(f"/v2/acme/web/gc/blobs/{layer.digest}").content == layer.data
        assert writer.delete("/v2/acme/web/gc/manifests/v1").status_code == 202
        deadline = time.monotonic() + 60
        while seaweed.keys(bucket) and time.monotonic() < deadline:
            time.sleep(0.1)  # the GC reviews at once: no delay, no grace
        assert seaweed.keys(bucket) == {}
        assert_error(writer.get(f"/v2/acme/web/gc/blobs/{layer.digest}"), 404, "BLOB_UNKNOWN")
        # Pushed again, it is a new object: served whole, not from the old copy.
        oci.push(writer, "acme/web/gc", img, "v1")
        assert writer.get(f"/v2/acme/web/gc/blobs/{layer.digest}").content == layer.data


def test_deleted_objects_leave_the_cache(seaweed: SeaweedS3, bucket: str) -> None:
    """The store drops its copy of every object it deletes, one by one (a failed
    upload's object) or in batches (the GC)."""
    store = S3BlobStore(seaweed.client(), bucket, "")
    store.cache = BlobCache(64 * MiB)
    data = {g: os.urandom(3 * MiB + i) for i, g in enumerate(("g1", "g2", "g3"))}
    for generation, blob in data.items():
        store.put_object(1, "sha256:x", generation, blob)
        got = asyncio.run(_read(store.open_reader(1, "sha256:x", generation, 0, len(blob))))
        assert got == blob
    assert store.cache.keys() == [store.key(1, "sha256:x", g) for g in data]
    assert store.cache.used == sum(len(b) for b in data.values())
    store.delete_object(1, "sha256:x", "g2")
    store.delete_objects([ObjectRef(1, "sha256:x", "g1"), ObjectRef(1, "sha256:x", "g3")])
    assert store.cache.keys() == []
    assert store.cache.used == 0
    assert seaweed.keys(bucket) == {}


async def _read(reader: BlobReader) -> bytes:
    return b"".join([bytes(c) async for c in reader.chunks()])


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 50), min_size=1, max_size=8),
    start=st.integers(0, 400),
    length=st.integers(1, 400),
)
def test_a_copy_reads_any_range_across_its_chunks(
    sizes: list[int], start: int, length: int
) -> None:
    blob = bytes(i % 251 for i in range(sum(sizes)))
    cache = BlobCache(4 * len(blob))
    fill = cache.fill("k", len(blob))
    assert fill is not None
    pos = 0
    for size in sizes:
        fill.add(blob[pos : pos + size])
        pos += size
    fill.done()
    start = start % len(blob)
    reader = cache.reader("k", start, length)
    assert reader is not None
    assert asyncio.run(_read(reader)) == blob[start : start + length]


def test_only_whole_copies_are_kept() -> None:
    cache = BlobCache(100)
    short = cache.fill("short", 10)
    assert short is not None
    short.add(b"123456789")
    short.done()  # one byte missing
    long = cache.fill("long", 10)
    assert long is not None
    long.add(b"12345678901")  # more than the object holds
    long.done()
    cut = cache.fill("cut", 10)
    assert cut is not None
    assert cache.fill("cut", 10) is None  # one fill per key at a time
    cut.add(b"12345")
    cut.abandon()
    assert cache.keys() == []
    assert cache.used == 0
    assert cache.fill("big", 26) is None  # over a quarter of the cache
    # A fill dropped unread (a response the client left before it began) gives its
    # room back and lets the next read of the key copy it.
    dropped = cache.fill("dropped", 25)
    assert dropped is not None
    assert cache.used == 25
    del dropped
    assert cache.used == 0
    again = cache.fill("dropped", 25)
    assert again is not None
    again.add(b"x" * 25)
    again.done()
    assert cache.keys() == ["dropped"]


def test_no_cache_with_size_0(tmp_path: Path, seaweed: SeaweedS3, bucket: str) -> None:
    data = tmp_path / "data"
    with _node(data, seaweed, bucket, "--blob-cache-size", "0") as writer:
        blob = os.urandom(MiB)
        digest = upload(writer, REPO, blob)
        assert writer.get(f"/v2/{REPO}/blobs/{digest}").content == blob
        _empty_the_bucket(seaweed, bucket)
        assert_error(writer.get(f"/v2/{REPO}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize("value", ["lots", "-1", "2GB", "1.5GiB", ""])
def test_a_bad_cache_size_is_one_line_and_exit_2(tmp_path: Path, value: str) -> None:
    result = subprocess.run(
        [CLI, "serve", "--data", str(tmp_path / "data"), "--blob-cache-size", value],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "--blob-cache-size" in result.stderr
    assert not (tmp_path / "data").exists()
