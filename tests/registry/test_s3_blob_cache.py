"""The node's cache of blobs it read whole from object storage (SeaweedFS), or
received whole in an upload.

A copy is seen from outside by taking the object out of the bucket behind the
registry's back: a blob the node copied is still served, whole and by range; one
it did not copy is "gone". Only whole copies are kept, the least recently used go
first, and a blob the GC removes is gone from the node's answers and its memory.
Tests of copies made by reading push through one node and read through a second
one started on the same data (a node's copies die with it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.digests import Digest
from app.registry import accounts, blob_cache, content, s3_uploads, uploads
from app.registry.blob_cache import SEEN_KEYS, BlobCache, default_size
from app.registry.blobstore import BlobReader, ObjectRef
from app.registry.cli_args import size as parse_size
from app.registry.errors import DigestInvalid
from app.registry.s3store import S3BlobStore
from app.registry.service import Registry
from app.registry.uploads import UploadStates
from tests.registry.oci_helpers import assert_error, running_registry, sha256, upload
from tests.support import oci
from tests.support.registry import CLI
from tests.support.seaweedfs import SeaweedS3

MiB = 1024 * 1024
REPO = "acme/web/cached"


@contextmanager
def _node(
    data: Path,
    seaweed: SeaweedS3,
    bucket: str,
    *args: str,
    gc_at_once: bool = False,
    pushed: list[bytes] | None = None,
) -> Iterator[httpx.Client]:
    """A node and its writer. Blobs no image holds stay for the GC's usual grace,
    unless ``gc_at_once``. The blobs ``pushed`` are uploaded first and the node is
    restarted: it holds no copy of them."""
    timing = {"review_delay": 0, "upload_grace": 0} if gc_at_once else {}
    with running_registry(
        data, blob_store=f"s3://{bucket}", env=seaweed.env, extra_args=list(args), **timing
    ) as server:
        if pushed:
            with server.client("writer") as writer:
                for blob in pushed:
                    upload(writer, REPO, blob)
            server.restart()
        with server.client("writer") as writer:
            yield writer


def _now(check: Callable[[], None]) -> None:
    """Check a copy at once (the cache's own verifier does it later, on a thread)."""
    check()


def _empty_the_bucket(seaweed: SeaweedS3, bucket: str) -> None:
    """Take every object out behind the registry's back (its rows stay)."""
    client = seaweed.client()
    for key in seaweed.keys(bucket):
        client.delete_object(Bucket=bucket, Key=key)
    assert seaweed.keys(bucket) == {}


def test_a_blob_read_whole_twice_is_served_by_the_node_that_read_it(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    data = tmp_path / "data"
    read = os.urandom(5 * MiB + 3)
    once = os.urandom(2 * MiB)
    ranged = os.urandom(MiB)
    read_digest, once_digest, ranged_digest = sha256(read), sha256(once), sha256(ranged)
    with _node(data, seaweed, bucket, pushed=[read, once, ranged]) as writer:
        # A range read is not a whole read: the whole read after it is the first.
        r = writer.get(f"/v2/{REPO}/blobs/{ranged_digest}", headers={"Range": "bytes=0-99"})
        assert r.status_code == 206
        assert writer.get(f"/v2/{REPO}/blobs/{ranged_digest}").content == ranged
        # The first whole read of an object is remembered, the second one kept.
        for _ in range(2):
            assert writer.get(f"/v2/{REPO}/blobs/{read_digest}").content == read
        assert writer.get(f"/v2/{REPO}/blobs/{once_digest}").content == once

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
        # The blobs read whole once were not copied: gone with their objects.
        assert_error(writer.get(f"/v2/{REPO}/blobs/{once_digest}"), 404, "BLOB_UNKNOWN")
        assert_error(writer.get(f"/v2/{REPO}/blobs/{ranged_digest}"), 404, "BLOB_UNKNOWN")
        # Permissions still come from the database, not from the copy.
        with httpx.Client(base_url=writer.base_url) as anonymous:
            assert anonymous.get(f"/v2/{REPO}/blobs/{read_digest}").status_code == 401


def test_a_pull_cut_short_leaves_no_copy(tmp_path: Path, seaweed: SeaweedS3, bucket: str) -> None:
    # More than the sockets between can hold: the node cannot send it all unread.
    blob = os.urandom(48 * MiB)
    digest = sha256(blob)
    with _node(tmp_path / "data", seaweed, bucket, pushed=[blob]) as writer:
        (key,) = seaweed.keys(bucket)
        assert writer.get(f"/v2/{REPO}/blobs/{digest}").content == blob  # its first read
        with writer.stream("GET", f"/v2/{REPO}/blobs/{digest}") as r:
            assert r.status_code == 200
            first = next(r.iter_bytes(MiB))
            assert first == blob[: len(first)]
        _empty_the_bucket(seaweed, bucket)
        assert_error(writer.get(f"/v2/{REPO}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
        # Put back, the object is read whole and kept: the cut read (its second,
        # which began a copy) gave its room and its key back.
        client = seaweed.client()
        client.put_object(Bucket=bucket, Key=key, Body=blob)
        assert writer.get(f"/v2/{REPO}/blobs/{digest}").content == blob
        _empty_the_bucket(seaweed, bucket)
        assert writer.get(f"/v2/{REPO}/blobs/{digest}").content == blob


def test_the_least_recently_used_copies_go_first(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    data = tmp_path / "data"
    blobs = [os.urandom(900_000 + i) for i in range(6)]
    big = os.urandom(MiB + 1)
    digests, big_digest = [sha256(b) for b in blobs], sha256(big)
    # 4 MiB: room for four of these blobs; one blob may take at most a quarter.
    with _node(data, seaweed, bucket, "--blob-cache-size", "4MiB", pushed=[*blobs, big]) as writer:

        def read_twice(digest: str) -> None:  # the second whole read keeps a copy
            for _ in range(2):
                assert writer.get(f"/v2/{REPO}/blobs/{digest}").status_code == 200

        for digest in digests[:4]:
            read_twice(digest)
        # Reading 0 again makes 1 the oldest; reading 4 and 5 pushes out 1 and 2.
        assert writer.get(f"/v2/{REPO}/blobs/{digests[0]}").status_code == 200
        for digest in digests[4:]:
            read_twice(digest)
        read_twice(big_digest)

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
    """The database is asked before the cache: a copied blob the GC removed is 404
    (that its copy leaves the cache is test_deleted_objects_leave_the_cache's)."""
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
        # With no upload grace the GC may rightly take a blob between its upload
        # and the manifest that references it (MANIFEST_BLOB_UNKNOWN, seen under
        # load): the push is then tried again, as a client would.
        for _attempt in range(10):
            try:
                oci.push(writer, "acme/web/gc", img, "v1")
                break
            except AssertionError as exc:
                if "MANIFEST_BLOB_UNKNOWN" not in str(exc):
                    raise
        else:
            raise AssertionError("the GC took a blob of every push")
        assert writer.get(f"/v2/acme/web/gc/blobs/{layer.digest}").content == layer.data


def test_a_blob_pushed_through_a_node_is_served_by_it(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    """The first pull after a push reads no store: the node keeps what it received,
    in one POST or in chunks (parts, staged tails and the final PUT's bytes)."""
    with _node(tmp_path / "data", seaweed, bucket) as writer:
        small = os.urandom(70_000)
        small_digest = upload(writer, REPO, small)
        chunked = os.urandom(16 * MiB + 5)
        digest = sha256(chunked)
        location = writer.post(f"/v2/{REPO}/blobs/uploads/").headers["Location"]
        offset = 0
        # 3 MiB: staged (under a part); 7 MiB: a part with the staged bytes; 1 MiB
        # staged again; the PUT's 5 MiB and 5 bytes: the last part.
        for size in (3 * MiB, 7 * MiB, MiB):
            r = writer.patch(
                location,
                content=chunked[offset : offset + size],
                headers={"Content-Range": f"{offset}-{offset + size - 1}"},
            )
            assert r.status_code == 202, r.text
            offset += size
        r = writer.put(location, params={"digest": digest}, content=chunked[offset:])
        assert r.status_code == 201, r.text

        _empty_the_bucket(seaweed, bucket)

        assert writer.get(f"/v2/{REPO}/blobs/{small_digest}").content == small
        r = writer.get(f"/v2/{REPO}/blobs/{digest}")
        assert r.status_code == 200
        assert r.content == chunked
        r = writer.get(f"/v2/{REPO}/blobs/{digest}", headers={"Range": "bytes=10485755-10485764"})
        assert r.status_code == 206
        assert r.content == chunked[10485755:10485765]


def test_a_second_request_on_a_fresh_upload_waits_for_the_first(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    """Requests on one upload take turns on a node, its first chunk too: a PUT
    sent while the first one streams neither mixes its bytes into the object or the
    node's copy nor ends the upload under it; it finds the upload finished."""
    data = os.urandom(9 * MiB + 1000)
    digest = sha256(data)
    streaming = threading.Event()

    def slow() -> Iterator[bytes]:
        yield data[:MiB]
        streaming.set()
        time.sleep(1.0)  # the other PUT arrives meanwhile
        for i in range(MiB, len(data), MiB):
            yield data[i : i + MiB]

    with _node(tmp_path / "data", seaweed, bucket) as writer:
        location = writer.post(f"/v2/{REPO}/blobs/uploads/").headers["Location"]
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(writer.put, location, params={"digest": digest}, content=slow())
            assert streaming.wait(30)
            time.sleep(0.3)  # the first PUT's bytes reached the node
            # A confused client's retry: the same digest, no body.
            second = writer.put(location, params={"digest": digest})
            assert first.result().status_code == 201, first.result().text
        assert_error(second, 404, "BLOB_UPLOAD_UNKNOWN")
        (key,) = seaweed.keys(bucket)
        assert seaweed.client().get_object(Bucket=bucket, Key=key)["Body"].read() == data
        _empty_the_bucket(seaweed, bucket)
        assert writer.get(f"/v2/{REPO}/blobs/{digest}").content == data


def test_an_upload_too_big_for_the_cache_is_not_kept(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str
) -> None:
    with _node(tmp_path / "data", seaweed, bucket, "--blob-cache-size", "4MiB") as writer:
        fits, too_big = os.urandom(MiB), os.urandom(MiB + 1)
        digests = [upload(writer, REPO, b) for b in (fits, too_big)]
        _empty_the_bucket(seaweed, bucket)
        assert writer.get(f"/v2/{REPO}/blobs/{digests[0]}").content == fits
        assert_error(writer.get(f"/v2/{REPO}/blobs/{digests[1]}"), 404, "BLOB_UNKNOWN")


def test_parts_in_flight_keep_the_order_of_the_bytes(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two parts upload at once; the first one's upload is held up. The object is
    still the bytes in the order they came (part numbers follow the bytes, not
    whichever upload starts first), and so is the node's copy."""
    for name, value in seaweed.env.items():
        monkeypatch.setenv(name, value)
    reg = Registry.open(tmp_path / "data", blob_store=f"s3://{bucket}")
    try:
        assert isinstance(reg.store, S3BlobStore)
        reg.store.cache = BlobCache(256 * MiB)
        with reg.db.write() as conn:
            accounts.add_workspace(conn, "acme")
            accounts.add_project(conn, "acme", "PLAT")
            accounts.add_repository(conn, "acme", "web", "PLAT")
            repo = accounts.get_repository(conn, "acme", "web")
            image = content.ensure_image(conn, repo, "cached", 0)
            session_id = uploads.create_session(conn, image.id, image.workspace_id, 0)
            session = uploads.get_session(conn, session_id)
        assert session is not None
        data = os.urandom(20 * MiB + 3)
        real = s3_uploads._upload_part
        held = threading.Event()

        def upload_part(*args: Any) -> Any:
            if not held.is_set():  # the first part: the second one starts meanwhile
                held.set()
                time.sleep(0.5)
            return real(*args)

        monkeypatch.setattr(s3_uploads, "_upload_part", upload_part)

        async def body() -> AsyncIterator[bytes]:
            for i in range(0, len(data), MiB):
                yield data[i : i + MiB]

        digest = Digest.parse(sha256(data))
        asyncio.run(
            s3_uploads.finish(
                reg, session, reg.uploads.get(session.id), body(), None, digest, repo, "cached"
            )
        )
        (key,) = seaweed.keys(bucket)
        assert seaweed.client().get_object(Bucket=bucket, Key=key)["Body"].read() == data
        reader = reg.store.cache.reader(key, 0, len(data))
        assert reader is not None
        assert asyncio.run(_read(reader)) == data
        # An upload whose bytes are not its digest's leaves no copy (nor room taken).
        with reg.db.write() as conn:
            other = uploads.get_session(
                conn, uploads.create_session(conn, image.id, image.workspace_id, 0)
            )
        assert other is not None
        wrong = Digest.parse(sha256(b"x"))
        with pytest.raises(DigestInvalid):
            asyncio.run(
                s3_uploads.finish(
                    reg, other, reg.uploads.get(other.id), body(), None, wrong, repo, "cached"
                )
            )
        assert reg.store.cache.keys() == [key]
        assert reg.store.cache.used == len(data)
    finally:
        reg.close()


def test_deleted_objects_leave_the_cache(seaweed: SeaweedS3, bucket: str) -> None:
    """The store drops its copy of every object it deletes, one by one (a failed
    upload's object) or in batches (the GC)."""
    store = S3BlobStore(seaweed.client(), bucket, "")
    store.cache = BlobCache(64 * MiB, verify=_now)
    data = {g: os.urandom(3 * MiB + i) for i, g in enumerate(("g1", "g2", "g3"))}
    digests = {g: sha256(blob) for g, blob in data.items()}
    for g, blob in data.items():
        store.put_object(1, digests[g], g, blob)
        for _ in range(2):  # the second whole read keeps a copy
            got = asyncio.run(_read(store.open_reader(1, digests[g], g, 0, len(blob))))
            assert got == blob
    assert store.cache.keys() == [store.key(1, digests[g], g) for g in data]
    assert store.cache.used == sum(len(b) for b in data.values())
    store.delete_object(1, digests["g2"], "g2")
    store.delete_objects([ObjectRef(1, digests[g], g) for g in ("g1", "g3")])
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
    cache = BlobCache(4 * len(blob), verify=_now)
    fill = cache.fill("k", len(blob), sha256(blob))
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


def test_only_whole_copies_of_the_right_bytes_are_kept() -> None:
    cache = BlobCache(100, verify=_now)
    ten = b"0123456789"
    short = cache.fill("short", 10, sha256(ten))
    assert short is not None
    short.add(ten[:9])
    short.done()  # one byte missing
    long = cache.fill("long", 10, sha256(ten))
    assert long is not None
    long.add(ten + b"!")  # more than the object holds
    long.done()
    wrong = cache.fill("wrong", 10, sha256(ten))
    assert wrong is not None
    wrong.add(b"0123456788")  # the right size, not the right bytes
    wrong.done()
    cut = cache.fill("cut", 10, sha256(ten))
    assert cut is not None
    assert cache.fill("cut", 10, sha256(ten)) is None  # one fill per key at a time
    cut.add(ten[:5])
    cut.abandon()
    assert cache.keys() == []
    assert cache.used == 0
    assert cache.fill("big", 26, sha256(b"x" * 26)) is None  # over a quarter of the cache
    assert cache.fill("odd", 10, "md5:0123") is None  # a digest it cannot check
    # A fill dropped unread (a response the client left before it began) gives its
    # room back and lets the next read of the key copy it.
    dropped = cache.fill("dropped", 10, sha256(ten))
    assert dropped is not None
    assert cache.used == 10
    del dropped
    assert cache.used == 0
    again = cache.fill("dropped", 10, sha256(ten))
    assert again is not None
    again.add(ten)
    again.done()
    assert cache.keys() == ["dropped"]


def test_fills_under_way_do_not_empty_the_cache() -> None:
    """Fills may reserve half the cache: a burst of pulls of different big blobs
    (or clients that stop reading) leaves the copies the node serves from."""
    cache = BlobCache(100, verify=_now)
    hot = cache.fill("hot", 20, sha256(b"h" * 20))
    assert hot is not None
    hot.add(b"h" * 20)
    pending = [cache.fill(f"f{i}", 25, sha256(b"f" * 25)) for i in range(3)]
    assert [f is not None for f in pending] == [True, True, False]
    assert cache.keys() == ["hot"]
    assert cache.used == 70
    # A third fill fits once one of the others ends (here: a client that left).
    assert pending[0] is not None
    pending[0].abandon()
    assert cache.fill("f2", 25, sha256(b"f" * 25)) is not None


def test_an_object_is_copied_on_its_second_whole_read() -> None:
    cache = BlobCache(100, verify=_now)
    assert not cache.read_before("k", 10)
    assert cache.read_before("k", 10)
    assert cache.read_before("k", 10)  # until a copy is made, every later read may make it
    cache.forget("k")  # deleted: its next read is a first read again
    assert not cache.read_before("k", 10)
    # Only the last SEEN_KEYS keys are remembered; a read moves its key to the end.
    for n in range(SEEN_KEYS - 1):
        assert not cache.read_before(f"other{n}", 10)
    assert cache.read_before("k", 10)
    assert not cache.read_before("newest", 10)  # pushes out other0, the oldest
    assert not cache.read_before("other0", 10)
    assert cache.read_before("k", 10)
    assert cache.read_before("newest", 10)
    # Copied, a key is forgotten: once its copy is evicted, two reads copy it again.
    data = b"n" * 10
    fill = cache.fill("newest", 10, sha256(data))
    assert fill is not None
    fill.add(data)
    assert cache.keys() == ["newest"]
    assert not cache.read_before("newest", 10)
    # What is too big to copy is not remembered (it would take a key's place).
    assert not cache.read_before("big", 26)
    assert not cache.read_before("big", 26)
    assert not cache.read_before("empty", 0)


def test_an_object_deleted_while_copied_is_not_kept() -> None:
    cache = BlobCache(100, verify=_now)
    data = b"d" * 20
    fill = cache.fill("k", 20, sha256(data))
    assert fill is not None
    fill.add(data[:10])
    cache.forget("k")  # the GC deleted the object meanwhile
    again = cache.fill("k", 20, sha256(data))  # a new read may copy it (it is not 404 yet)
    assert again is not None
    fill.add(data[10:])
    assert cache.keys() == []
    assert cache.used == 20  # only the new fill's room
    again.abandon()
    assert cache.used == 0


def test_a_copy_is_checked_after_its_last_byte_and_admitted_then() -> None:
    checks: list[Callable[[], None]] = []
    cache = BlobCache(100, verify=checks.append)
    data = b"c" * 20
    fill = cache.fill("k", 20, sha256(data))
    assert fill is not None
    fill.add(data)
    # Read whole, not yet checked: not served, and its room stays taken.
    assert len(checks) == 1
    assert cache.keys() == []
    assert cache.used == 20
    assert cache.fill("k", 20, sha256(data)) is None  # one copy of a key at a time
    assert not fill.ended.done()  # the response that read it waits (Fill.wait)
    ended = fill.ended
    del fill  # the response is gone; the check still holds the copy
    checks.pop()()
    assert ended.done()
    assert cache.keys() == ["k"]
    assert cache.used == 20
    # Deleted while it waited for its check: never admitted, its room given back.
    other = cache.fill("gone", 20, sha256(data))
    assert other is not None
    other.add(data)
    cache.forget("gone")
    checks.pop()()
    assert cache.keys() == ["k"]
    assert cache.used == 20
    # Wrong bytes found by the check: the same.
    wrong = cache.fill("wrong", 20, sha256(data))
    assert wrong is not None
    wrong.add(b"x" * 20)
    checks.pop()()
    assert cache.keys() == ["k"]
    assert cache.used == 20


def test_a_check_that_could_not_be_started_gives_the_room_back_once() -> None:
    # A thread pool queues the check before it starts its thread; if that fails,
    # the check may still run later, and must then change nothing.
    queued: list[Callable[[], None]] = []

    def verify(check: Callable[[], None]) -> None:
        queued.append(check)
        raise RuntimeError("can't start new thread")

    cache = BlobCache(100, verify=verify)
    data = b"q" * 20
    fill = cache.fill("k", 20, sha256(data))
    assert fill is not None
    fill.add(data)
    assert fill.ended.done()
    assert cache.keys() == []
    assert cache.used == 0
    queued.pop()()
    assert cache.keys() == []
    assert cache.used == 0


def test_the_cache_checks_copies_on_a_thread_of_its_own() -> None:
    cache = BlobCache(100)
    data = b"t" * 20
    fill = cache.fill("k", 20, sha256(data))
    assert fill is not None
    fill.add(data)
    deadline = time.monotonic() + 60
    while cache.keys() != ["k"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.keys() == ["k"]
    assert cache.used == 20


def test_a_draft_becomes_a_copy_only_when_admitted() -> None:
    cache = BlobCache(100, verify=_now)
    draft = cache.draft()
    draft.add(b"abc")
    draft.add(b"defgh")
    assert cache.used == 8  # its room is reserved as the bytes arrive
    assert cache.keys() == []
    draft.admit("k")
    assert cache.keys() == ["k"]
    assert cache.used == 8
    reader = cache.reader("k", 2, 4)
    assert reader is not None
    assert asyncio.run(_read(reader)) == b"cdef"
    draft.add(b"more")  # an admitted draft takes nothing more
    assert cache.used == 8
    given_up = cache.draft()
    given_up.add(b"12345")
    given_up.abandon()
    given_up.admit("lost")
    assert cache.keys() == ["k"]
    assert cache.used == 8
    dropped = cache.draft()  # an upload state dropped without a word
    dropped.add(b"12345")
    assert cache.used == 13
    del dropped
    assert cache.used == 8


def test_a_draft_over_a_quarter_of_the_cache_is_given_up() -> None:
    cache = BlobCache(100, verify=_now)
    draft = cache.draft()
    draft.add(b"x" * 20)
    draft.add(b"x" * 6)
    assert cache.used == 0
    draft.admit("k")
    assert cache.keys() == []


def test_idle_drafts_yield_their_room() -> None:
    """Uploads may reserve half the cache with the fills; a draft whose PUT never
    came gives its room up to the next one that needs it, a draft in use does not."""
    clock = [1000.0]
    cache = BlobCache(100, clock=lambda: clock[0], verify=_now)
    old = cache.draft()
    old.add(b"o" * 25)
    busy = cache.draft()
    clock[0] += blob_cache.DRAFT_IDLE_S + 1
    busy.add(b"b" * 25)
    assert cache.used == 50
    fill = cache.fill("f", 10, sha256(b"f" * 10))
    assert fill is not None  # the old draft yielded
    assert cache.used == 35
    old.admit("old")
    assert cache.keys() == []  # the old draft gave its room up: never a copy
    assert cache.fill("g", 20, sha256(b"g" * 20)) is None  # the busy one does not
    busy.admit("busy")
    fill.add(b"f" * 10)
    assert cache.keys() == ["busy", "f"]


def test_idle_drafts_go_before_copies() -> None:
    """A node that took an upload's PATCH but not its PUT is never told the upload
    ended: its draft goes before any copy the node serves."""
    clock = [1000.0]
    cache = BlobCache(100, clock=lambda: clock[0], verify=_now)
    dead = cache.draft()
    dead.add(b"d" * 25)
    clock[0] += blob_cache.DRAFT_IDLE_S + 1
    for key in "abc":
        fill = cache.fill(key, 25, sha256(b"c" * 25))
        assert fill is not None
        fill.add(b"c" * 25)
    assert cache.keys() == ["a", "b", "c"]
    assert cache.used == 100
    fill = cache.fill("d", 25, sha256(b"c" * 25))
    assert fill is not None
    fill.add(b"c" * 25)
    assert cache.keys() == ["a", "b", "c", "d"]
    dead.admit("dead")
    assert cache.keys() == ["a", "b", "c", "d"]
    assert cache.used == 100


def test_ending_an_upload_state_gives_its_draft_up() -> None:
    cache = BlobCache(100, verify=_now)
    states = UploadStates()

    def restart(session_id: str) -> None:
        states.get(session_id).restart()

    for end in (states.drop, states.cancel, states.start, restart):
        state = states.start("s")
        state.draft = cache.draft()
        state.draft.add(b"z" * 10)
        draft = state.draft
        end("s")
        draft.admit("k")
        assert cache.used == 0
        assert cache.keys() == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("4096", 4096),
        ("10B", 10),
        ("1KiB", 1024),
        ("512MiB", 512 << 20),
        ("2 GiB", 2 << 30),
        ("1gib", 1 << 30),
        ("1TiB", 1 << 40),
    ],
)
def test_cache_sizes_as_the_app_prints_them(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_the_default_size_fits_the_machine() -> None:
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < default_size() <= min(1 << 30, memory // 8)


def test_a_copy_of_wrong_bytes_is_not_kept(tmp_path: Path, seaweed: SeaweedS3, bucket: str) -> None:
    """An object the store returns changed (same size, other bytes) is served as
    the store gave it, but not kept: once the store is right again, so are pulls."""
    blob = os.urandom(3 * MiB)
    digest = sha256(blob)
    with _node(tmp_path / "data", seaweed, bucket, pushed=[blob]) as writer:
        (key,) = seaweed.keys(bucket)
        client = seaweed.client()
        damaged = bytearray(blob)
        damaged[MiB] ^= 0xFF
        client.put_object(Bucket=bucket, Key=key, Body=bytes(damaged))
        for _ in range(2):  # the second read would keep a copy, if it were right
            assert writer.get(f"/v2/{REPO}/blobs/{digest}").content == bytes(damaged)
        client.put_object(Bucket=bucket, Key=key, Body=blob)
        assert writer.get(f"/v2/{REPO}/blobs/{digest}").content == blob
        # And that good read was kept.
        _empty_the_bucket(seaweed, bucket)
        assert writer.get(f"/v2/{REPO}/blobs/{digest}").content == blob


def test_no_cache_with_size_0(tmp_path: Path, seaweed: SeaweedS3, bucket: str) -> None:
    data = tmp_path / "data"
    with _node(data, seaweed, bucket, "--blob-cache-size", "0") as writer:
        blob = os.urandom(MiB)
        digest = upload(writer, REPO, blob)
        for _ in range(2):
            assert writer.get(f"/v2/{REPO}/blobs/{digest}").content == blob
        _empty_the_bucket(seaweed, bucket)
        assert_error(writer.get(f"/v2/{REPO}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize(
    ("store", "args", "said"),
    [
        ("file", ["--blob-cache-size", "64MiB"], "the filesystem blob store"),
        ("s3", ["--blob-cache-size", "64MiB", "--redirect-blobs"], "--redirect-blobs"),
        ("file", [], None),
        ("file", ["--blob-cache-size", "0"], None),
        ("s3", ["--redirect-blobs"], None),
        ("s3", ["--blob-cache-size", "0", "--redirect-blobs"], None),
        ("s3", ["--blob-cache-size", "64MiB"], None),
    ],
)
def test_a_cache_size_a_node_cannot_use_is_noted_at_start(
    tmp_path: Path, seaweed: SeaweedS3, bucket: str, store: str, args: list[str], said: str | None
) -> None:
    log = tmp_path / "serve.log"
    where = {"blob_store": f"s3://{bucket}"} if store == "s3" else {}
    with (
        running_registry(
            tmp_path / "data", env=seaweed.env, extra_args=args, log_file=log, **where
        ) as server,
        server.client("writer") as writer,
    ):
        assert writer.get("/v2/").status_code == 200  # it serves all the same
    notes = [line for line in log.read_text().splitlines() if "--blob-cache-size" in line]
    if said is None:
        assert notes == []
    else:
        (note,) = notes
        assert note.startswith(f"berth-registry: note: --blob-cache-size has no effect with {said}")


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
