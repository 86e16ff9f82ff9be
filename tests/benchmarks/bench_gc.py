"""GC cost as the registry grows: Berth's online GC against Distribution 2.8's
offline ``garbage-collect``, with N = 1,000, 10,000 and 100,000 manifests stored.

Both registries hold the same content, seeded directly (Berth: rows in its
metadata store and real blob files; Distribution: its filesystem layout as it
writes it): images of 200 manifests, one tag each, every manifest with its own
config and its own small layer on top of three base layers all share. Each round
deletes 100 tags of one image over HTTP and measures the time until their 200
blobs are freed:

* Berth: ``serve`` with a review delay of 0; one bulk tag delete request (as the
  console sends it), until the last of those blob files is gone from disk. Also
  printed: the GC's own time (``duration_ms`` of the runs it recorded).
* Distribution: a DELETE per manifest by digest (2.8 cannot delete a tag alone, nor
  several at once), then, the registry stopped as the tool requires,
  ``docker-registry garbage-collect`` (mark every manifest, sweep every blob) until
  it returns. Also printed: ``garbage-collect`` alone.

Prints medians per N, the ratio Distribution / Berth end to end, and of the GC
work alone (``garbage-collect`` / the runs' ``duration_ms``). Target: Berth
roughly flat in N and at least 20x faster at N = 100,000.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_gc.py -s``
(``BENCH_GC_SIZES``: comma-separated N, default ``1000,10000,100000``;
``BENCH_ROUNDS``: rounds per N, default 3).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from app.registry import accounts
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.service import Registry
from tests.support import oci
from tests.support.distribution import DistributionServer
from tests.support.gc_checks import wait_until
from tests.support.registry import PASSWORD, RegistryServer

SIZES = [int(n) for n in os.environ.get("BENCH_GC_SIZES", "1000,10000,100000").split(",")]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PER_IMAGE = 200
DELETED = 100
CHUNK = 5000
WRITERS = 8


@dataclass(frozen=True, slots=True)
class Stored:
    digest: str
    data: bytes
    media_type: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One manifest: its image, tag, own config and layer, and its bytes."""

    image: int
    tag: str
    config: Stored
    layer: Stored
    manifest: Stored


def _stored(data: bytes, media_type: str) -> Stored:
    return Stored("sha256:" + hashlib.sha256(data).hexdigest(), data, media_type)


def content(n: int) -> tuple[list[Stored], list[Entry]]:
    base = [_stored(hashlib.sha512(b"base %d" % i).digest() * 16, oci.OCI_LAYER) for i in range(3)]
    entries = []
    for i in range(n):
        config = _stored(
            json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "created": "2026-01-01T00:00:00Z",
                    "config": {"Labels": {"build": str(i)}},
                    "rootfs": {"type": "layers", "diff_ids": []},
                },
                sort_keys=True,
            ).encode(),
            oci.OCI_CONFIG,
        )
        layer = _stored(hashlib.sha512(b"own %d" % i).digest() * 2, oci.OCI_LAYER)
        body = {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": {"mediaType": config.media_type, "digest": config.digest, "size": 0},
            "layers": [
                {"mediaType": b.media_type, "digest": b.digest, "size": len(b.data)}
                for b in (*base, layer)
            ],
        }
        body["config"]["size"] = len(config.data)  # type: ignore[index]
        manifest = _stored(json.dumps(body, sort_keys=True).encode(), oci.OCI_MANIFEST)
        entries.append(Entry(i // PER_IMAGE, f"v{i % PER_IMAGE}", config, layer, manifest))
    return base, entries


def doomed(entries: list[Entry], round_: int) -> list[Entry]:
    """The 100 tags a round deletes: every other tag of one image (a new image each
    round), as an admin clearing out stale tags would."""
    return [e for e in entries if e.image == round_ and int(e.tag[1:]) % 2 == 0][:DELETED]


# Berth ---------------------------------------------------------------------------


def _write(item: tuple[Path, bytes]) -> None:
    path, data = item
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_files(files: list[tuple[Path, bytes]]) -> None:
    """Many small files, written by a few threads (the syscalls release the GIL)."""
    with ThreadPoolExecutor(WRITERS) as pool:
        for _ in pool.map(_write, files, chunksize=256):
            pass


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


def seed_berth(data: Path, base: list[Stored], entries: list[Entry]) -> Path:
    """Rows and blob files as pushes would have left them, written in bulk."""
    reg = Registry.open(data)
    try:
        with reg.db.write() as conn:
            ws = accounts.add_workspace(conn, "acme")
            accounts.add_project(conn, "acme", "PLAT")
            repo = accounts.add_repository(conn, "acme", "web", "PLAT")
            accounts.add_user(conn, "bench", PASSWORD, superuser=True)
        old = now_ms() - 7_200_000  # pushed two hours ago: the grace is long over
        images = len(entries) // PER_IMAGE
        blob_ids: dict[str, int] = {}
        blob_rows: list[dict[str, Any]] = []

        files: list[tuple[Path, bytes]] = []

        def blob(b: Stored, refs: int) -> int:
            generation = str(uuid.uuid4())
            files.append((reg.store.object_path(ws, b.digest, generation), b.data))
            blob_ids[b.digest] = len(blob_rows) + 1
            blob_rows.append(
                {
                    "id": len(blob_rows) + 1,
                    "workspace_id": ws,
                    "digest": b.digest,
                    "size": len(b.data),
                    "media_type": b.media_type,
                    "generation": generation,
                    "created_at": old,
                    "touched_at": old,
                    "image_refs": refs,
                }
            )
            return blob_ids[b.digest]

        shared = [blob(b, images) for b in base]
        manifests, layers, tags, links, usage = [], [], [], [], []
        for mid, e in enumerate(entries, start=1):
            config_id, layer_id = blob(e.config, 1), blob(e.layer, 1)
            image_id = e.image + 1
            manifests.append(
                {
                    "id": mid,
                    "workspace_id": ws,
                    "image_id": image_id,
                    "digest": e.manifest.digest,
                    "media_type": e.manifest.media_type,
                    "artifact_type": e.config.media_type,
                    "payload": e.manifest.data,
                    "config_blob_id": config_id,
                    "subject_digest": None,
                    "total_size": len(e.manifest.data)
                    + sum(len(b.data) for b in (*base, e.config, e.layer)),
                    "platforms": "linux/amd64",
                    "created": "2026-01-01T00:00:00Z",
                    "annotations": None,
                    "created_at": old,
                    "touched_at": old,
                    "holders": 1,  # its tag
                }
            )
            for pos, bid in enumerate([*shared, layer_id]):
                layers.append({"manifest_id": mid, "position": pos, "blob_id": bid})
            tags.append(
                {
                    "image_id": image_id,
                    "name": e.tag,
                    "manifest_id": mid,
                    "pushed_at": old,
                    "manifest_size": manifests[-1]["total_size"],
                    "manifest_created": manifests[-1]["created"],
                }
            )
            for bid in (config_id, layer_id):
                links.append({"image_id": image_id, "blob_id": bid, "linked_at": old})
                usage.append({"image_id": image_id, "blob_id": bid, "refs": 1})
        for image_id in range(1, images + 1):
            for bid in shared:
                links.append({"image_id": image_id, "blob_id": bid, "linked_at": old})
                usage.append({"image_id": image_id, "blob_id": bid, "refs": PER_IMAGE})
        write_files(files)
        with reg.db.write() as conn:
            conn.execute(
                insert(s.images),
                [
                    {
                        "id": i,
                        "repository_id": repo,
                        "workspace_id": ws,
                        "name": f"img{i - 1}",
                        "created_at": old,
                        "last_push_at": old,
                    }
                    for i in range(1, images + 1)
                ],
            )
            for table, rows in (
                (s.blobs, blob_rows),
                (s.manifests, manifests),
                (s.manifest_layers, layers),
                (s.tags, tags),
                (s.image_blobs, links),
                (s.blob_usage, usage),
            ):
                for chunk in _chunks(rows):
                    conn.execute(insert(table), chunk)
    finally:
        reg.close()
    return data / "blobs" / str(ws)


def berth_round(
    server: RegistryServer, objects: Path, gone: list[Entry]
) -> tuple[float, float, float]:
    """(seconds from the delete request until every blob of ``gone`` left the disk,
    seconds of GC work the runs recorded, seconds the delete request took)."""
    paths = [
        objects / "sha256" / b.digest[7:9] / b.digest[7:] for e in gone for b in (e.config, e.layer)
    ]
    assert all(p.is_dir() for p in paths)
    db_url = f"sqlite:///{server.data / 'registry.db'}"
    from app.registry.db.engine import Database

    db = Database(db_url)
    try:
        with db.read() as conn:
            last_run = conn.execute(select(func.coalesce(func.max(s.gc_runs.c.id), 0))).scalar()
        with httpx.Client(base_url=server.url, auth=("bench", PASSWORD), timeout=60) as c:
            started = time.perf_counter()
            # One request, as the console's bulk delete sends it.
            image_id = gone[0].image + 1
            etag = c.get(f"/api/v1/images/{image_id}").headers["ETag"]
            r = c.post(
                f"/api/v1/images/{image_id}/tags/delete",
                json={"tags": [e.tag for e in gone]},
                headers={"If-Match": etag},
            )
            assert r.status_code == 200, r.text
            assert r.json()["deleted"] == DELETED
            answered = time.perf_counter()
            while any(p.exists() for p in paths):
                time.sleep(0.002)
            elapsed = time.perf_counter() - started
        wait_until(lambda: _freed(db, last_run) >= 2 * DELETED, "the GC runs to be recorded")
        with db.read() as conn:
            gc_ms = conn.execute(
                select(func.sum(s.gc_runs.c.duration_ms)).where(s.gc_runs.c.id > last_run)
            ).scalar()
    finally:
        db.dispose()
    return elapsed, float(gc_ms or 0) / 1000, answered - started


def _freed(db: Any, last_run: int) -> int:
    with db.read() as conn:
        return int(
            conn.execute(
                select(func.coalesce(func.sum(s.gc_runs.c.blobs_deleted), 0)).where(
                    s.gc_runs.c.id > last_run
                )
            ).scalar()
        )


# Distribution -------------------------------------------------------------------------


def seed_distribution(storage: Path, base: list[Stored], entries: list[Entry]) -> Path:
    """Distribution's layout: blob data, layer links, and per manifest its revision
    and tag links."""
    root = storage / "docker" / "registry" / "v2"

    files: list[tuple[Path, bytes]] = []

    def put(b: Stored) -> None:
        files.append((root / "blobs" / "sha256" / b.digest[7:9] / b.digest[7:] / "data", b.data))

    def link(folder: Path, digest: str) -> None:
        files.append((folder / "link", digest.encode()))

    for b in base:
        put(b)
    for e in entries:
        for b in (e.config, e.layer, e.manifest):
            put(b)
        repo = root / "repositories" / "acme" / "web" / f"img{e.image}"
        # Distribution finds repositories by their _layers directory.
        for b in (*base, e.config, e.layer) if e.tag == "v0" else (e.config, e.layer):
            link(repo / "_layers" / "sha256" / b.digest[7:], b.digest)
        hexd = e.manifest.digest[7:]
        link(repo / "_manifests" / "revisions" / "sha256" / hexd, e.manifest.digest)
        link(repo / "_manifests" / "tags" / e.tag / "current", e.manifest.digest)
        link(repo / "_manifests" / "tags" / e.tag / "index" / "sha256" / hexd, e.manifest.digest)
    write_files(files)
    return root / "blobs" / "sha256"


def distribution_round(
    dist: DistributionServer, blobs: Path, gone: list[Entry]
) -> tuple[float, float]:
    """(seconds from the first DELETE until garbage-collect returned, seconds of
    garbage-collect alone)."""
    paths = [blobs / b.digest[7:9] / b.digest[7:] for e in gone for b in (e.config, e.layer)]
    assert all(p.is_dir() for p in paths)
    dist.start()
    try:
        with dist.http_client() as c:
            started = time.perf_counter()
            for e in gone:
                r = c.delete(f"/v2/acme/web/img{e.image}/manifests/{e.manifest.digest}")
                assert r.status_code == 202, r.text
    finally:
        dist.stop()  # garbage-collect runs on a stopped (or read-only) registry
    gc_started = time.perf_counter()
    report = dist.garbage_collect()
    done = time.perf_counter()
    assert not any(p.exists() for p in paths)
    assert f"{2 * DELETED + DELETED} blobs and" in report  # configs, layers, manifests
    return done - started, done - gc_started


@pytest.mark.timeout(4 * 3600)  # seeding N = 100,000 twice takes minutes
def test_gc_cost_as_the_registry_grows(tmp_path: Path) -> None:
    results = []
    for n in SIZES:
        base, entries = content(n)
        t0 = time.perf_counter()
        objects = seed_berth(tmp_path / f"berth-{n}", base, entries)
        t1 = time.perf_counter()
        dist = DistributionServer(tmp_path / f"dist-{n}", tls=False, auth=False)
        dist.write_config()
        dist_blobs = seed_distribution(dist.storage, base, entries)
        t2 = time.perf_counter()
        print(f"\nN = {n:,}: seeded Berth in {t1 - t0:.1f} s, Distribution in {t2 - t1:.1f} s")

        berth = RegistryServer(tmp_path / f"berth-{n}", review_delay=0).start()
        try:
            ours = [berth_round(berth, objects, doomed(entries, r)) for r in range(ROUNDS)]
        finally:
            berth.stop()
        theirs = [distribution_round(dist, dist_blobs, doomed(entries, r)) for r in range(ROUNDS)]
        row = (
            n,
            statistics.median(x[0] for x in ours),
            statistics.median(x[1] for x in ours),
            statistics.median(x[2] for x in ours),
            statistics.median(x[0] for x in theirs),
            statistics.median(x[1] for x in theirs),
        )
        results.append(row)
        print(
            f"N = {n:,}: Berth {row[1]:.3f} s (GC work {row[2]:.3f} s, delete request "
            f"{row[3]:.3f} s), Distribution {row[4]:.3f} s (garbage-collect {row[5]:.3f} s): "
            f"{row[4] / row[1]:.1f}x"
        )
    print("\nGC: delete 100 tags, time until their blobs are freed (median of rounds)")
    print(
        f"{'N':>9} {'Berth':>9} {'GC work':>9} {'request':>9} {'Distrib.':>9} {'g-c':>9} "
        f"{'ratio':>7} {'g-c/GC':>7}"
    )
    for n, b_total, b_gc, b_req, d_total, d_gc in results:
        print(
            f"{n:>9,} {b_total:>8.3f}s {b_gc:>8.3f}s {b_req:>8.3f}s {d_total:>8.3f}s "
            f"{d_gc:>8.3f}s {d_total / b_total:>6.1f}x {d_gc / b_gc:>6.1f}x"
        )
