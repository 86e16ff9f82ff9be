"""Crash safety: kill -9 the server during uploads and during GC, several times.
After each restart every confirmed tag pulls complete and byte-identical; at the
end fsck reports nothing but leaked orphans, which --repair removes."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from app.registry.db.engine import now_ms
from tests.support import oci
from tests.support.gc_checks import Metadata, http_pull, wait_until
from tests.support.inprocess import Store
from tests.support.registry import CLI, RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GRACE = 1.0
CHUNK = 64 * 1024
KEEPER = "acme/web/keeper"
GARBAGE = "acme/web/garbage"
SHARED = oci.random_layer(30_000, "crash-shared")


@dataclass
class Pushes:
    """Tags whose push was confirmed (201) and not deleted since: they must survive."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    confirmed: dict[tuple[str, str], oci.Image] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    started: int = 0


def _chunked_upload(c: httpx.Client, name: str, blob: oci.Blob) -> None:
    r = c.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    for offset in range(0, blob.size, CHUNK):
        chunk = blob.data[offset : offset + CHUNK]
        r = c.patch(
            location,
            content=chunk,
            headers={
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert r.status_code == 202, r.text
        location = r.headers["location"]
    r = c.put(location, params={"digest": blob.digest})
    assert r.status_code == 201, r.text


def _pusher(server: RegistryServer, pushes: Pushes, seed: int, stop: threading.Event) -> None:
    """Push images with chunked uploads, each to a new tag, until the server dies."""
    rng = random.Random(seed)
    with server.client("root") as c:
        n = 0
        while not stop.is_set():
            n += 1
            tag = f"s{seed}-{n}"
            layers = [SHARED] + [
                oci.random_layer(rng.randint(100_000, 400_000), f"{seed}-{n}-{i}") for i in range(2)
            ]
            img = oci.image(layers, label=tag)
            try:
                with pushes.lock:
                    pushes.started += 1
                for blob in img.blobs:
                    if c.head(f"/v2/{KEEPER}/blobs/{blob.digest}").status_code != 200:
                        _chunked_upload(c, KEEPER, blob)
                r = c.put(
                    f"/v2/{KEEPER}/manifests/{tag}",
                    content=img.manifest.data,
                    headers={"Content-Type": img.manifest.media_type},
                )
            except (httpx.TransportError, AssertionError) as exc:
                if not stop.is_set():  # the kill comes only after stop is set
                    pushes.errors.append(f"{tag}: {exc!r}")
                return
            if r.status_code == 201:
                with pushes.lock:
                    pushes.confirmed[(KEEPER, tag)] = img
            elif not stop.is_set():
                pushes.errors.append(f"{tag}: {r.status_code} {r.text[:200]}")


def _seed_garbage(data: Path, round_: int, images: int = 60, layers: int = 9) -> int:
    """Tagged images written in-process (fast), then their tags deleted: every blob
    except the shared one is garbage, due for review at once. Returns the blob count."""
    store = Store(data, review_delay_ms=0, grace_ms=int(GRACE * 1000), seed_accounts=False)
    try:
        store.now = now_ms() - 10_000  # pushed long enough ago for the grace to be over
        for i in range(images):
            own = [oci.random_layer(200, f"garbage-{round_}-{i}-{j}") for j in range(layers)]
            store.push(GARBAGE, oci.image([SHARED, *own], label=f"{round_}-{i}"), f"g{i}")
        store.now = now_ms() - 5_000
        for i in range(images):
            store.delete_tag(GARBAGE, f"g{i}")
    finally:
        store.close()
    return images * (layers + 1)


class Pushers:
    """Three pushing threads; ``kill`` stops them by killing the server under them."""

    def __init__(self, server: RegistryServer, pushes: Pushes, seed: int) -> None:
        self.server = server
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=_pusher, args=(server, pushes, seed * 10 + i, self.stop))
            for i in range(3)
        ]
        for t in self.threads:
            t.start()

    def kill_server(self) -> None:
        self.stop.set()  # from here on, failed requests are the crash's doing
        self.server.kill()
        for t in self.threads:
            t.join(60)


def _verify(server: RegistryServer, pushes: Pushes) -> int:
    with server.client("root") as c:
        tags = set(c.get(f"/v2/{KEEPER}/tags/list").json()["tags"])
        for (name, tag), img in sorted(pushes.confirmed.items()):
            assert tag in tags, f"confirmed tag {tag} was lost"
            assert http_pull(c, name, tag) == img.digest
        # A push the crash cut short may or may not have its tag; if it has, it is whole.
        for tag in tags:
            http_pull(c, KEEPER, tag)
    return len(tags)


def _fsck(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "fsck", "--data", str(data), "--verify-content", "--orphan-min-age", "0", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_kill_during_uploads_and_gc(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path
) -> None:
    server = registry_factory(review_delay=0, upload_grace=GRACE)
    pushes = Pushes()
    with server.client("root") as c:
        oci.push(c, KEEPER, oci.image([SHARED], label="keeper"), "v1")
    pushes.confirmed[(KEEPER, "v1")] = oci.image([SHARED], label="keeper")
    rng = random.Random(3)
    mid_gc_kills = 0
    for round_ in range(4):
        during_gc = round_ % 2 == 1
        if during_gc:
            server.stop()
            total = _seed_garbage(server.data, round_)
            with Metadata(server.data) as meta:
                before = meta.blob_rows()
                server.start()
                pushers = Pushers(server, pushes, round_)
                # Kill once the GC has deleted some of the garbage but not all of it.
                wait_until(
                    lambda m=meta, b=before: m.blob_rows() < b - 20,
                    "the GC to start deleting",
                    timeout=60,
                )
                pushers.kill_server()
                left = meta.blob_rows()
            if left > before - total:
                mid_gc_kills += 1
        else:
            pushers = Pushers(server, pushes, round_)
            time.sleep(rng.uniform(0.5, 2.0))
            pushers.kill_server()
        server.start()
        _verify(server, pushes)

    # Let the GC finish what the crashes interrupted, then check the store offline.
    with Metadata(server.data) as meta:
        wait_until(lambda: meta.queued() == 0, "the review queues to drain", timeout=120)
    server.stop()
    first = _fsck(server.data)
    problems = [line for line in first.stdout.splitlines() if not line.startswith("fsck:")]
    assert all(line.startswith(("orphan:", "note: young orphan")) for line in problems), (
        first.stdout
    )
    repaired = _fsck(server.data, "--repair")
    assert repaired.returncode in (0, 1), repaired.stdout
    clean = _fsck(server.data)
    assert clean.returncode == 0, clean.stdout
    server.start()
    tags = _verify(server, pushes)
    print(
        f"\ncrash safety: 4 kills ({mid_gc_kills} in the middle of a GC pass), "
        f"{pushes.started} pushes started, {len(pushes.confirmed)} confirmed, {tags} tags "
        f"pulled byte-identical; fsck after the crashes: {len(problems)} orphans "
        f"({first.stdout.strip().splitlines()[-1]})"
    )
    assert pushes.errors == []
    assert mid_gc_kills >= 1
