"""Several nodes on object storage (tests/support/cluster.py: PostgreSQL, SeaweedFS,
HAProxy running packaging/haproxy/haproxy.cfg).

* Aggregate pull throughput of 8 concurrent pulls of a 256 MiB image (4 layers)
  through the load balancer, with one node behind it and with two (median of the
  rounds; every byte's digest verified by the client), with the nodes' blob caches
  and without.
* GC on S3 with 100,000 manifests stored: 100 tags of images with blobs of their
  own are deleted, and the time until their objects are gone from the bucket is
  measured (the GC worker runs at once: review delay 0); again for each round, on
  the same stored manifests (median of the rounds). Everything is pushed through
  /v2/, nothing is seeded into the database.

Prints the figures, the ratio two nodes / one node, and the load average.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_cluster.py -s``
(``BENCH_ROUNDS`` rounds of pulls and of GC, default 3; ``BENCH_MANIFESTS`` manifests
for the GC, default 100,000).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import oci
from tests.support.cluster import Cluster, HaProxy
from tests.support.registry import PASSWORD
from tests.support.seaweedfs import SeaweedS3

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MANIFESTS = int(os.environ.get("BENCH_MANIFESTS", "100000"))
PULLERS = 8
LAYERS = 4
LAYER_SIZE = 64 * 1024 * 1024
CHUNK = 1 << 20


def _pull(url: str, name: str) -> int:
    """Pull the image over HTTP, verifying every digest; returns bytes received."""
    with httpx.Client(base_url=url, auth=("writer", PASSWORD), timeout=300) as c:
        r = c.get(
            f"/v2/{name}/manifests/v1",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        r.raise_for_status()
        body = json.loads(r.content)
        total = len(r.content)
        for d in [body["config"], *body["layers"]]:
            h = hashlib.sha256()
            with c.stream("GET", f"/v2/{name}/blobs/{d['digest']}") as got:
                got.raise_for_status()
                for chunk in got.iter_bytes(CHUNK):
                    h.update(chunk)
                    total += len(chunk)
            assert "sha256:" + h.hexdigest() == d["digest"]
        return total


def _concurrent_pulls(url: str, name: str) -> float:
    """MB/s of PULLERS simultaneous pulls through the balancer at ``url``."""
    barrier = threading.Barrier(PULLERS)

    def one() -> int:
        barrier.wait()
        return _pull(url, name)

    start = time.perf_counter()
    with ThreadPoolExecutor(PULLERS) as pool:
        received = sum(pool.map(lambda _: one(), range(PULLERS)))
    return received / (time.perf_counter() - start) / 1e6


@pytest.mark.parametrize("cache", ["with", "without"])
def test_concurrent_pulls_one_node_vs_two(tmp_path: Path, cache: str) -> None:
    """Two nodes behind one HAProxy, and a second HAProxy with only the first node
    behind it; rounds alternate between the two, so both see the same machine.
    With the nodes' blob caches (the default: the pulls before the rounds fill
    them, a node copying a blob on its second read) and without
    (``--blob-cache-size 0``: every pull reads the bucket)."""
    layers = [oci.random_layer(LAYER_SIZE, f"lbbench{i}") for i in range(LAYERS)]
    img = oci.image(layers)
    rates: dict[int, list[float]] = {1: [], 2: []}
    loads: list[float] = []
    s3 = SeaweedS3()
    try:
        bucket = s3.create_bucket(f"lb-{uuid.uuid4().hex[:8]}")
        args = [] if cache == "with" else ["--blob-cache-size", "0"]
        cluster = Cluster(tmp_path / "nodes", s3, bucket, count=2, extra_args=args).start()
        single = HaProxy([cluster.nodes[0].host] * 2)
        try:
            with cluster.client("writer") as c:
                oci.push(c, "acme/web/pulled", img, "v1")
            urls = {1: single.url, 2: cluster.lb_url}
            for count in (1, 2):
                # Warm: the balancer spreads the blobs' requests over the nodes, and
                # each node needs two reads of a blob to keep it.
                for _ in range(4):
                    _pull(urls[count], "acme/web/pulled")
            for n in range(ROUNDS):
                for count in (1, 2) if n % 2 == 0 else (2, 1):
                    rates[count].append(_concurrent_pulls(urls[count], "acme/web/pulled"))
                    loads.append(os.getloadavg()[0])
        finally:
            single.stop()
            cluster.stop()
    finally:
        s3.stop()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(
        f"\n{PULLERS} concurrent pulls of {img.compressed_size / 1e6:.0f} MB through HAProxy,"
        f" {cache} the nodes' blob caches:"
    )
    print(f"  one node:  {one:7.1f} MB/s  ({', '.join(f'{r:.1f}' for r in rates[1])})")
    print(f"  two nodes: {two:7.1f} MB/s  ({', '.join(f'{r:.1f}' for r in rates[2])})")
    print(f"  two / one: {two / one:.2f}x on {os.cpu_count()} cores")
    print(f"  load average (1 min): {min(loads):.2f}..{max(loads):.2f}")


def _manifest(config: oci.Blob, layer: oci.Blob, n: int) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
        "annotations": {"n": str(n)},
    }
    return json.dumps(body, sort_keys=True).encode()


@pytest.mark.timeout(7200)  # pushing 100,000 manifests takes a while
def test_gc_on_s3_with_100000_manifests(tmp_path: Path) -> None:
    s3 = SeaweedS3()
    try:
        bucket = s3.create_bucket(f"gc-{uuid.uuid4().hex[:8]}")
        cluster = Cluster(
            tmp_path / "gc", s3, bucket, count=1, review_delay=0, upload_grace=30
        ).start()
        try:
            _gc_run(cluster, s3, bucket)
        finally:
            cluster.stop()
    finally:
        s3.stop()


def _gc_run(cluster: Cluster, s3: SeaweedS3, bucket: str) -> None:
    victims = [oci.image([oci.random_layer(4000, f"victim-{i}")]) for i in range(100 * ROUNDS)]
    base = oci.image([oci.random_layer(4000, "common")])
    config, layer = base.blobs
    with cluster.client("writer") as c:
        for i, img in enumerate(victims):
            oci.push(c, "acme/web/victims", img, f"v{i}")
        for i in range(MANIFESTS // 500 + 1):
            oci.push(c, f"acme/web/many{i}", base, "base")
    started = time.perf_counter()
    lock = threading.Lock()
    done = [0]

    def put_range(first: int, last: int) -> None:
        with cluster.client("writer") as c:
            for n in range(first, last):
                # Spread over images of 500 tags: what is measured is the GC with
                # many manifests stored, not pushes into one huge image.
                r = c.put(
                    f"/v2/acme/web/many{n // 500}/manifests/m{n}",
                    content=_manifest(config, layer, n),
                    headers={"Content-Type": oci.OCI_MANIFEST},
                )
                assert r.status_code == 201, r.text
                with lock:
                    done[0] += 1
                    if done[0] % 10_000 == 0:
                        rate = done[0] / (time.perf_counter() - started)
                        print(f"  {done[0]} manifests ({rate:.0f}/s)", flush=True)

    step = MANIFESTS // 8
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: put_range(i * step, (i + 1) * step), range(8)))
    seeded = time.perf_counter() - started
    print(
        f"\n{done[0]} manifests pushed through /v2/ in {seeded:.0f} s "
        f"({done[0] / seeded:.0f}/s, 8 connections)"
    )
    # The victims' blobs were uploaded well over the grace ago; delete their tags.
    time.sleep(max(0.0, 31 - seeded))
    deletes: list[float] = []
    gones: list[float] = []
    for n in range(ROUNDS):
        before = s3.keys(bucket)
        started = time.perf_counter()
        with cluster.client("writer") as c:
            for i in range(100 * n, 100 * (n + 1)):
                assert c.delete(f"/v2/acme/web/victims/manifests/v{i}").status_code == 202
        deleted = time.perf_counter() - started
        expected = len(before) - 2 * 100
        while len(s3.keys(bucket)) > expected:
            time.sleep(0.05)
        gone = time.perf_counter() - started
        deletes.append(deleted)
        gones.append(gone)
        print(
            f"round {n + 1}: 100 tag deletes: {deleted:.2f} s; their 200 objects gone from "
            f"the bucket {gone:.2f} s after the first delete ({gone - deleted:.2f} s after "
            f"the last); load average: {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    deleted, gone = statistics.median(deletes), statistics.median(gones)
    print(
        f"median of {ROUNDS} rounds: 100 tag deletes {deleted:.2f} s; objects gone "
        f"{gone:.2f} s after the first delete"
    )
    print(f"objects left: {len(s3.keys(bucket))}; load average: {os.getloadavg()}")
