"""Management API at scale.

1. Listing 100,000 tags of one image (three tags per digest, as CI tags a build
   with its version, commit and branch): first-page latency and the time to get
   every tag, Berth's management API (keyset pages, with digest, size, dates and
   the other tags of each digest) against Distribution 2.8's ``tags/list`` on the
   same tags; Berth's own OCI ``tags/list`` too. Distribution 2.8 ignores ``n`` and
   ``last`` on tags/list: its first page is the whole list, unsorted. Both
   registries are seeded directly: Berth's metadata rows (usage graph computed by
   the registry's own code), Distribution's filesystem layout as it writes it (tag
   ``current`` and ``index`` links, revisions, layer links, blobs).
2. The storage summary of a workspace holding 100,000 manifests (500 images of 200
   manifests, each with its own config and layer over three shared base layers).
   Target: under 200 ms.

Prints medians, and ratios against Distribution measured in the same run.
Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_api.py -s``
(``BENCH_TAGS`` default 100000, ``BENCH_MANIFESTS`` default 100000,
``BENCH_ROUNDS`` default 5).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from app.registry import accounts
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.gc import storage, usage
from app.registry.service import Registry
from tests.support import oci
from tests.support.distribution import DistributionServer
from tests.support.registry import PASSWORD, RegistryServer

TAGS = int(os.environ.get("BENCH_TAGS", "100000"))
MANIFESTS = int(os.environ.get("BENCH_MANIFESTS", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
TAGS_PER_MANIFEST = 3
PER_IMAGE = 200
CHUNK = 5000


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def median_time(fn: Callable[[], object], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), CHUNK):
        yield rows[i : i + CHUNK]


class Seed:
    """Rows as pushes would leave them, written in bulk (blob files are not needed by
    the endpoints measured here)."""

    def __init__(self, data: Path, images: int) -> None:
        self.reg = Registry.open(data)
        with self.reg.db.write() as conn:
            self.ws = accounts.add_workspace(conn, "bench")
            accounts.add_project(conn, "bench", "PLAT")
            self.repo = accounts.add_repository(conn, "bench", "big", "PLAT")
            accounts.add_user(conn, "bench", PASSWORD, superuser=True)
            conn.execute(
                insert(s.images),
                [
                    {
                        "id": i,
                        "repository_id": self.repo,
                        "workspace_id": self.ws,
                        "name": f"img{i}",
                        "created_at": now_ms(),
                        "last_push_at": now_ms(),
                    }
                    for i in range(1, images + 1)
                ],
            )
        self.rows: dict[Any, list[dict[str, Any]]] = {
            t: [] for t in (s.blobs, s.manifests, s.manifest_layers, s.tags, s.image_blobs)
        }
        self.blob_ids: dict[str, int] = {}

    def blob(self, data: bytes, media_type: str, image_id: int) -> int:
        d = digest(data)
        if d not in self.blob_ids:
            self.blob_ids[d] = len(self.blob_ids) + 1
            self.rows[s.blobs].append(
                {
                    "id": self.blob_ids[d],
                    "workspace_id": self.ws,
                    "digest": d,
                    "size": len(data),
                    "media_type": media_type,
                    "generation": str(uuid.uuid4()),
                    "created_at": 0,
                    "touched_at": 0,
                    "image_refs": 0,
                }
            )
        return self.blob_ids[d]

    def manifest(self, image_id: int, blobs: list[tuple[bytes, str]], n: int) -> tuple[int, bytes]:
        ids = [self.blob(data, mt, image_id) for data, mt in blobs]
        body = {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": {
                "mediaType": blobs[0][1],
                "digest": digest(blobs[0][0]),
                "size": len(blobs[0][0]),
            },
            "layers": [
                {"mediaType": mt, "digest": digest(d), "size": len(d)} for d, mt in blobs[1:]
            ],
        }
        payload = json.dumps(body, sort_keys=True).encode()
        mid = len(self.rows[s.manifests]) + 1
        self.rows[s.manifests].append(
            {
                "id": mid,
                "workspace_id": self.ws,
                "image_id": image_id,
                "digest": digest(payload),
                "media_type": oci.OCI_MANIFEST,
                "artifact_type": oci.OCI_CONFIG,
                "payload": payload,
                "config_blob_id": ids[0],
                "subject_digest": None,
                "total_size": len(payload) + sum(len(d) for d, _ in blobs),
                "platforms": "linux/amd64",
                "created": f"2026-01-01T00:00:{n % 60:02d}Z",
                "annotations": None,
                "created_at": 0,
                "touched_at": 0,
            }
        )
        for pos, bid in enumerate(ids[1:]):
            self.rows[s.manifest_layers].append(
                {"manifest_id": mid, "position": pos, "blob_id": bid}
            )
        for bid in ids:
            self.rows[s.image_blobs].append({"image_id": image_id, "blob_id": bid, "linked_at": 0})
        return mid, payload

    def tag(self, image_id: int, name: str, manifest_id: int, at: int) -> None:
        manifest = self.rows[s.manifests][manifest_id - 1]
        self.rows[s.tags].append(
            {
                "image_id": image_id,
                "name": name,
                "manifest_id": manifest_id,
                "pushed_at": at,
                "manifest_size": manifest["total_size"],
                "manifest_created": manifest["created"],
            }
        )

    def commit(self, images: int) -> None:
        # image_blobs has one row per (image, blob): drop repeats of shared layers.
        links = {(r["image_id"], r["blob_id"]): r for r in self.rows[s.image_blobs]}
        self.rows[s.image_blobs] = list(links.values())
        with self.reg.db.write() as conn:
            for table, rows in self.rows.items():
                for chunk in chunks(rows):
                    conn.execute(insert(table), chunk)
            # The derived usage graph, by the registry's own code.
            for image_id in range(1, images + 1):
                usage.rebuild_image(conn, image_id)
        self.reg.close()


BASES = [(hashlib.sha512(b"base %d" % i).digest() * 64, oci.OCI_LAYER) for i in range(3)]


def config(n: int) -> tuple[bytes, str]:
    body = {"architecture": "amd64", "os": "linux", "config": {"Labels": {"n": str(n)}}}
    return json.dumps(body, sort_keys=True).encode(), oci.OCI_CONFIG


def own_layer(n: int) -> tuple[bytes, str]:
    return hashlib.sha512(b"own %d" % n).digest() * 4, oci.OCI_LAYER


# 1. tags ----------------------------------------------------------------------------


def tag_name(i: int) -> str:
    return f"build-{i:06d}"


def seed_tags(berth_data: Path, dist: DistributionServer) -> None:
    seed = Seed(berth_data, 1)
    root = dist.storage / "docker" / "registry" / "v2"
    repo = root / "repositories" / "bench" / "big" / "img1"
    files: dict[Path, bytes] = {}
    manifests = []
    started = now_ms() - TAGS * 1000
    for m in range(-(-TAGS // TAGS_PER_MANIFEST)):
        blobs = [config(m), *BASES, own_layer(m)]
        mid, payload = seed.manifest(1, blobs, m)
        manifests.append((mid, payload))
        for data, _ in blobs:
            d = digest(data)[7:]
            files[root / "blobs" / "sha256" / d[:2] / d / "data"] = data
            files[repo / "_layers" / "sha256" / d / "link"] = digest(data).encode()
        d = digest(payload)
        files[root / "blobs" / "sha256" / d[7:9] / d[7:] / "data"] = payload
        files[repo / "_manifests" / "revisions" / "sha256" / d[7:] / "link"] = d.encode()
    for i in range(TAGS):
        mid, payload = manifests[i // TAGS_PER_MANIFEST]
        seed.tag(1, tag_name(i), mid, started + i * 1000)
        tag_dir = repo / "_manifests" / "tags" / tag_name(i)
        d = digest(payload)
        files[tag_dir / "current" / "link"] = d.encode()
        files[tag_dir / "index" / "sha256" / d[7:] / "link"] = d.encode()
    seed.commit(1)
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def paginate_api(client: httpx.Client, limit: int, sort: str = "name") -> int:
    count, cursor = 0, ""
    while True:
        page = client.get(
            "/api/v1/images/1/tags", params={"limit": limit, "cursor": cursor, "sort": sort}
        ).json()
        count += len(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return count


def paginate_v2(client: httpx.Client, name: str, n: int) -> int:
    count = 0
    url: str | None = f"/v2/{name}/tags/list?n={n}"
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.text
        count += len(r.json()["tags"] or [])
        link = r.headers.get("link")
        url = link.split(";")[0].strip("<> ") if link else None
    return count


def test_listing_100000_tags(tmp_path: Path) -> None:
    dist = DistributionServer(tmp_path / "dist", tls=False, auth=False)
    dist.write_config()
    t0 = time.perf_counter()
    seed_tags(tmp_path / "berth", dist)
    print(
        f"\nseeded {TAGS:,} tags on 1 image in both registries in {time.perf_counter() - t0:.0f} s"
    )
    berth = RegistryServer(tmp_path / "berth").start()
    dist.start()
    try:
        with (
            httpx.Client(base_url=berth.url, auth=("bench", PASSWORD), timeout=600) as ours,
            httpx.Client(base_url=dist.url, timeout=600) as theirs,
        ):
            assert paginate_api(ours, 1000) == TAGS
            assert paginate_v2(theirs, "bench/big/img1", 1000) == TAGS
            rows = [
                (
                    "first page of 100 (Distribution: all)",
                    median_time(lambda: ours.get("/api/v1/images/1/tags?limit=100")),
                    median_time(lambda: ours.get("/v2/bench/big/img1/tags/list?n=100")),
                    median_time(lambda: theirs.get("/v2/bench/big/img1/tags/list?n=100")),
                ),
                (
                    "first page (100), by push time",
                    median_time(
                        lambda: ours.get("/api/v1/images/1/tags?limit=100&sort=-pushed_at")
                    ),
                    None,
                    None,
                ),
                (
                    "first page (100), by size",
                    median_time(lambda: ours.get("/api/v1/images/1/tags?limit=100&sort=-size")),
                    None,
                    None,
                ),
                (
                    "every tag, pages of 1000",
                    median_time(lambda: paginate_api(ours, 1000), max(1, ROUNDS // 2)),
                    median_time(
                        lambda: paginate_v2(ours, "bench/big/img1", 1000), max(1, ROUNDS // 2)
                    ),
                    median_time(
                        lambda: paginate_v2(theirs, "bench/big/img1", 1000), max(1, ROUNDS // 2)
                    ),
                ),
                (
                    "every tag, pages of 100",
                    median_time(lambda: paginate_api(ours, 100), 1),
                    None,
                    median_time(lambda: paginate_v2(theirs, "bench/big/img1", 100), 1),
                ),
            ]
    finally:
        berth.stop()
        dist.stop()
    print(f"\nListing {TAGS:,} tags of one image (median seconds)")
    print(f"{'':34} {'Berth API':>10} {'Berth /v2':>10} {'Distrib.':>10} {'ratio':>7}")
    for label, api_s, v2_s, dist_s in rows:
        ratio = f"{dist_s / api_s:6.1f}x" if dist_s else ""
        v2 = f"{v2_s:10.4f}" if v2_s is not None else f"{'':10}"
        dd = f"{dist_s:10.4f}" if dist_s is not None else f"{'':10}"
        print(f"{label:34} {api_s:10.4f} {v2} {dd} {ratio:>7}")


# 2. storage summary -----------------------------------------------------------------


def test_storage_summary_with_100000_manifests(tmp_path: Path) -> None:
    images = max(1, MANIFESTS // PER_IMAGE)
    t0 = time.perf_counter()
    seed = Seed(tmp_path / "berth", images)
    for n in range(MANIFESTS):
        image_id = n // PER_IMAGE + 1
        mid, _ = seed.manifest(image_id, [config(n), *BASES, own_layer(n)], n)
        seed.tag(image_id, f"v{n % PER_IMAGE}", mid, 0)
    seed.commit(images)
    print(
        f"\nseeded {MANIFESTS:,} manifests in {images} images in {time.perf_counter() - t0:.0f} s"
    )
    reg = Registry.open(tmp_path / "berth")
    try:
        with reg.db.read() as conn:
            totals_s = median_time(lambda: storage.totals(conn, 1))
            per_repo_s = median_time(lambda: storage.repository_bytes(conn, 1))
    finally:
        reg.close()
    berth = RegistryServer(tmp_path / "berth").start()
    try:
        with httpx.Client(base_url=berth.url, auth=("bench", PASSWORD), timeout=600) as c:
            figures = c.get("/api/v1/workspaces/bench/storage").json()
            assert figures["blob_count"] == 2 * MANIFESTS + len(BASES)
            api_s = median_time(lambda: c.get("/api/v1/workspaces/bench/storage"), ROUNDS * 4)
            layers_s = median_time(lambda: c.get("/api/v1/workspaces/bench/storage/shared-layers"))
            images_s = median_time(
                lambda: c.get("/api/v1/workspaces/bench/images?sort=-size&limit=100")
            )
    finally:
        berth.stop()
    print(f"\nStorage with {MANIFESTS:,} manifests (median seconds; target for the summary 0.200)")
    print(f"  GET /workspaces/bench/storage        {api_s:8.4f}")
    print(f"    totals (one pass over blob rows)    {totals_s:8.4f}")
    print(f"    per-repository exclusive/shared     {per_repo_s:8.4f}")
    print(f"  GET .../storage/shared-layers        {layers_s:8.4f}")
    print(f"  GET .../images?sort=-size (first 100) {images_s:8.4f}")
    print(f"  {'within' if api_s < 0.2 else 'OVER'} the 200 ms target")
