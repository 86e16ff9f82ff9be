"""Storage analysis of a CNCF Distribution 2.8 registry holding 200 images x 50
tags, with the client's bounded concurrency against one request at a time.

The registry's filesystem layout is seeded directly (blobs, revision, tag and
layer links as Distribution writes them), which takes seconds instead of the
minutes 10,000 pushes would. Each image has 10 manifests (5 tags each, so tags
share digests), all on one shared base layer plus a layer of their own. The scan
reads the catalog, 200 tag lists, 10,000 manifests and 2,000 configs. Prints the
median time to a complete analysis for each concurrency, requests per second,
and the speed-up of the bounded-concurrency scan over the sequential one
measured in the same run.

On localhost there is no latency to hide, so concurrency can only win where a
spare core exists; the second measurement puts a relay adding ``BENCH_LATENCY_MS``
(default 2 ms) each way between client and registry, as a network would.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_scan.py -s``
(``BENCH_ROUNDS``: rounds per setting on localhost, default 3;
``BENCH_LATENCY_ROUNDS``: through the relay, default 1, ``BENCH_LATENCY_MS=0``
skips it; ``BENCH_CONCURRENCY``: default 8).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import pytest

from app.client.oci import OciClient
from app.client.scan import RegistryScan, scan_registry
from app.client.transport import ConnectionSettings
from tests.support import oci
from tests.support.distribution import DistributionServer
from tests.support.processes import ServerProcess

IMAGES = 200
TAGS = 50
MANIFESTS_PER_IMAGE = 10
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
LATENCY_MS = float(os.environ.get("BENCH_LATENCY_MS", "2"))
LATENCY_ROUNDS = int(os.environ.get("BENCH_LATENCY_ROUNDS", "1"))


def _blob(root: Path, data: bytes) -> str:
    hexd = hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / hexd[:2] / hexd / "data"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return f"sha256:{hexd}"


def _link(path: Path, digest: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "link").write_text(digest)


def seed(storage: Path) -> int:
    """Write the layout; returns the bytes every tag reaches (distinct blobs)."""
    root = storage / "docker" / "registry" / "v2"
    base = b"base-layer" * 2000
    referenced: dict[str, int] = {}
    base_digest = _blob(root, base)
    referenced[base_digest] = len(base)
    for i in range(IMAGES):
        name = f"team{i % 10}/image{i}"
        repo = root / "repositories" / name
        for m in range(MANIFESTS_PER_IMAGE):
            own = f"layer {i}/{m} ".encode() * 200
            own_digest = _blob(root, own)
            cfg = json.dumps(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "created": f"2026-01-{1 + m:02d}T00:00:00Z",
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "config": {"Labels": {"image": str(i), "build": str(m)}},
                }
            ).encode()
            cfg_digest = _blob(root, cfg)
            manifest = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": oci.OCI_MANIFEST,
                    "config": {
                        "mediaType": oci.OCI_CONFIG,
                        "digest": cfg_digest,
                        "size": len(cfg),
                    },
                    "layers": [
                        {"mediaType": oci.OCI_LAYER, "digest": d, "size": s}
                        for d, s in ((base_digest, len(base)), (own_digest, len(own)))
                    ],
                }
            ).encode()
            manifest_digest = _blob(root, manifest)
            referenced.update(
                {own_digest: len(own), cfg_digest: len(cfg), manifest_digest: len(manifest)}
            )
            for digest in (base_digest, own_digest, cfg_digest):
                _link(repo / "_layers" / "sha256" / digest[7:], digest)
            _link(
                repo / "_manifests" / "revisions" / "sha256" / manifest_digest[7:], manifest_digest
            )
            per = TAGS // MANIFESTS_PER_IMAGE
            for t in range(m * per, (m + 1) * per):
                tag = repo / "_manifests" / "tags" / f"v{t}"
                _link(tag / "current", manifest_digest)
                _link(tag / "index" / "sha256" / manifest_digest[7:], manifest_digest)
    return sum(referenced.values())


# A TCP relay that delays every chunk by LATENCY in each direction without
# limiting bandwidth: a registry across a network instead of on localhost. It runs
# in its own process so its work does not compete with the client for the GIL.
RELAY = """
import asyncio, sys, time
target, delay = int(sys.argv[1]), float(sys.argv[2])
async def pump(reader, writer):
    queue = asyncio.Queue()
    async def read():
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay, data))
        queue.put_nowait((0.0, b""))
    async def write():
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()
        writer.close()
    await asyncio.gather(read(), write(), return_exceptions=True)
async def handle(reader, writer):
    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
    await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


async def timed_scan(
    server: DistributionServer, concurrency: int, port: int | None = None
) -> tuple[float, int, RegistryScan]:
    assert server.ca_file is not None
    url = server.url if port is None else f"https://127.0.0.1:{port}"
    settings = ConnectionSettings(url, ca_bundle=server.ca_file, max_connections=concurrency)
    async with OciClient.connect(settings, concurrency=concurrency) as client:
        started = time.perf_counter()
        scan = await scan_registry(client)
        elapsed = time.perf_counter() - started
        return elapsed, client.requests, scan


def measure(
    server: DistributionServer, referenced: int, rounds: int, label: str, port: int | None = None
) -> None:
    results: dict[int, list[tuple[float, int]]] = {CONCURRENCY: [], 1: []}
    for _ in range(rounds):
        for concurrency in (CONCURRENCY, 1):
            elapsed, requests, scan = asyncio.run(timed_scan(server, concurrency, port))
            assert len(scan.tags) == IMAGES * TAGS
            assert not scan.errors
            assert scan.storage().referenced == referenced
            results[concurrency].append((elapsed, requests))
    medians = {}
    print(f"-- {label}")
    for concurrency, runs in results.items():
        elapsed = statistics.median(e for e, _ in runs)
        requests = runs[0][1]
        medians[concurrency] = elapsed
        print(
            f"concurrency {concurrency:>2}: median {elapsed:6.2f} s to a complete analysis, "
            f"{requests} requests, {requests / elapsed:7.0f} requests/s "
            f"(runs: {', '.join(f'{e:.2f}' for e, _ in runs)})"
        )
    print(
        f"bounded concurrency ({CONCURRENCY}) vs one at a time: "
        f"{medians[1] / medians[CONCURRENCY]:.2f}x faster"
    )


@pytest.mark.timeout(3600)  # minutes per round on a busy 2-core machine
def test_scan_200_images_by_50_tags(tmp_path: Path) -> None:
    server = DistributionServer(tmp_path / "dist", auth=False)
    server.write_config()
    t0 = time.perf_counter()
    referenced = seed(server.storage)
    print(f"\nseeded {IMAGES} images x {TAGS} tags in {time.perf_counter() - t0:.1f} s")
    server.start()
    relay: ServerProcess | None = None
    try:
        measure(server, referenced, ROUNDS, "localhost (no network latency: CPU-bound)")
        if LATENCY_MS > 0:
            relay = ServerProcess(
                [sys.executable, "-c", RELAY, str(server.port), str(LATENCY_MS / 1000)]
            )
            measure(
                server,
                referenced,
                LATENCY_ROUNDS,
                f"through a relay adding {LATENCY_MS:g} ms each way",
                int(relay.url),
            )
    finally:
        if relay is not None:
            relay.stop()
        server.stop()
