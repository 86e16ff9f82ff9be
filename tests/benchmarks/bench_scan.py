"""Storage analysis of a CNCF Distribution 2.8 registry holding 200 images × 50
tags, with the client's bounded concurrency against one request at a time.

The registry's filesystem layout is seeded directly (blobs, revision, tag and
layer links as Distribution writes them), which takes seconds instead of the
minutes 10,000 pushes would. Each image has 10 manifests (5 tags each, so tags
share digests), all on one shared base layer plus a layer of their own. The scan
reads the catalog, 200 tag lists, 10,000 manifests and 2,000 configs. Prints the
median time to a complete analysis for each concurrency, requests per second,
and the speed-up of the bounded-concurrency scan over the sequential one
measured in the same run.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_scan.py -s``
(``BENCH_ROUNDS``: rounds per setting, default 3; ``BENCH_CONCURRENCY``: default 8).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import time
from pathlib import Path

from app.client.oci import OciClient
from app.client.scan import RegistryScan, scan_registry
from app.client.transport import ConnectionSettings
from tests.support import oci
from tests.support.distribution import DistributionServer

IMAGES = 200
TAGS = 50
MANIFESTS_PER_IMAGE = 10
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))


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


async def timed_scan(
    server: DistributionServer, concurrency: int
) -> tuple[float, int, RegistryScan]:
    assert server.ca_file is not None
    settings = ConnectionSettings(
        server.url, ca_bundle=server.ca_file, max_connections=max(concurrency, 1)
    )
    async with OciClient.connect(settings, concurrency=concurrency) as client:
        started = time.perf_counter()
        scan = await scan_registry(client)
        elapsed = time.perf_counter() - started
        return elapsed, client.requests, scan


def test_scan_200_images_by_50_tags(tmp_path: Path) -> None:
    server = DistributionServer(tmp_path / "dist", auth=False)
    server._write_config()
    t0 = time.perf_counter()
    referenced = seed(server.storage)
    print(f"\nseeded {IMAGES} images × {TAGS} tags in {time.perf_counter() - t0:.1f} s")
    server.start()
    try:
        results: dict[int, list[tuple[float, int]]] = {CONCURRENCY: [], 1: []}
        for _ in range(ROUNDS):
            for concurrency in (CONCURRENCY, 1):
                elapsed, requests, scan = asyncio.run(timed_scan(server, concurrency))
                assert len(scan.tags) == IMAGES * TAGS
                assert not scan.errors
                assert scan.storage().referenced == referenced
                results[concurrency].append((elapsed, requests))
    finally:
        server.stop()

    medians = {}
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
        f"{medians[1] / medians[CONCURRENCY]:.2f}× faster"
    )
