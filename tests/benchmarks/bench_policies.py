"""Cleanup policy previews at scale, filled through the public API only.

1. One image with ``BENCH_TAGS`` tags (default 100,000): builds of one small layer of
   their own over a shared base layer, each build tagged five times (build-N, sha-N,
   and three more, as CI does), a thousand of them pulled; pushed through /v2/ by
   four clients at once.
2. A workspace with ``BENCH_IMAGES`` images (default 1,000), each with five builds
   tagged twice.

The preview asked for is the repository's, through the management API: ``POST
.../policy/previews`` with rules keep-last 1000, keep-regex ``^v``, remove-not-pulled-
for 0 days (so nearly every tag goes: the storage effect has the most to walk), then
the first page of its tags. Prints the median of ``BENCH_ROUNDS`` (default 5) of: the
whole request, the plan as the server timed it (read, decide, storage effect), and
the first page; with the load average. Target: a preview in at most 1 s.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_policies.py -s``.
``BENCH_DATA=DIR`` keeps the registry's data in DIR: the first run fills it (through
/v2/, as above) and marks it filled; later runs with the same DIR and sizes measure
the same content again without filling (the fill takes most of an hour on 2 cores).
What is measured still goes through the management API every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import oci
from tests.support.api import api
from tests.support.registry import PASSWORD, RegistryServer, standard_registry

# Filling through /v2/ takes long: every new tag rewrites its image's usage rows.
pytestmark = pytest.mark.timeout(4 * 3600)

TAGS = int(os.environ.get("BENCH_TAGS", "100000"))
IMAGES = int(os.environ.get("BENCH_IMAGES", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
KEPT = os.environ.get("BENCH_DATA")
TAGS_PER_BUILD = 5
CLIENTS = 4
RULES: list[Any] = [
    {"kind": "keep_last", "value": 1000},
    {"kind": "keep_regex", "value": "^v"},
    {"kind": "remove_not_pulled_for", "value": 0},
]


class Pusher:
    """Pushes builds over /v2/ with one keep-alive client per thread."""

    def __init__(self, server: RegistryServer) -> None:
        self.server = server
        self.local = threading.local()
        self.base = oci.random_layer(50_000, "bench-base")
        self.config = oci.config([self.base], label="bench")
        self.requests = 0
        self.clients: list[httpx.Client] = []

    def client(self) -> httpx.Client:
        c = getattr(self.local, "client", None)
        if c is None:
            c = httpx.Client(base_url=self.server.url, auth=("root", PASSWORD), timeout=120)
            self.local.client = c
            self.clients.append(c)
        return c

    def blob(self, name: str, data: bytes) -> None:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = self.client().post(
            f"/v2/{name}/blobs/uploads/",
            params={"digest": digest},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 201, r.text

    def build(self, name: str, n: int, tags: list[str]) -> None:
        own = os.urandom(512) + str(n).encode()
        self.blob(name, own)
        layer = {
            "mediaType": oci.OCI_LAYER,
            "digest": "sha256:" + hashlib.sha256(own).hexdigest(),
            "size": len(own),
        }
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": oci.OCI_MANIFEST,
                "config": self.config.descriptor(),
                "layers": [self.base.descriptor(), layer],
            }
        ).encode()
        for tag in tags:
            r = self.client().put(
                f"/v2/{name}/manifests/{tag}",
                content=body,
                headers={"Content-Type": oci.OCI_MANIFEST},
            )
            assert r.status_code == 201, r.text
        self.requests += 1 + len(tags)

    def start(self, name: str) -> None:
        """The shared base layer and config, linked to ``name`` (HEAD first: a blob
        the workspace holds is mounted rather than uploaded again)."""
        for b in (self.base, self.config):
            self.blob(name, b.data)


def _fill(pusher: Pusher, jobs: Iterator[Callable[[], None]]) -> None:
    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _measure(server: RegistryServer, path: str, label: str, rules: list[Any]) -> None:
    totals, plans, pages = [], [], []
    with api(server) as c:
        # Signed in first: the first request verifies the password (argon2id, about
        # 0.3 s here), which is not the preview's cost.
        assert c.get("/workspaces").status_code == 200
        for _ in range(ROUNDS):
            started = time.perf_counter()
            r = c.post(path, json={"rules": rules})
            totals.append(time.perf_counter() - started)
            assert r.status_code == 201, r.text
            preview = r.json()
            plans.append(preview["plan_ms"] / 1000)
            first_page = f"/policy-previews/{preview['id']}/tags"
            pages.append(_timed(lambda url=first_page: c.get(url, params={"limit": 1000})))
    print(
        f"  {label}: {preview['tags']} tags in {preview['images']} images, "
        f"{preview['remove']} go, GC frees {preview['freed']} B, keeps {preview['kept']} B"
    )
    print(
        f"    preview request median {statistics.median(totals) * 1000:.0f} ms "
        f"(plan {statistics.median(plans) * 1000:.0f} ms as timed by the server), "
        f"first page of 1000 rows {statistics.median(pages) * 1000:.0f} ms; "
        f"runs: {', '.join(f'{t * 1000:.0f}' for t in totals)} ms"
    )


def _ci_tags(n: int) -> list[str]:
    """What CI tags build n with; every hundredth build is a release."""
    last = f"v1.{n}" if n % 100 == 0 else f"b{n}-c"
    return [f"build-{n}", f"sha-{n:07x}", f"b{n}-a", f"b{n}-b", last]


def _fill_all(server: RegistryServer) -> None:
    with api(server) as c:
        assert (
            c.post(
                "/workspaces/acme/repositories", json={"slug": "big", "project": "PLAT"}
            ).status_code
            == 201
        )
        assert (
            c.post(
                "/workspaces/acme/repositories", json={"slug": "many", "project": "PLAT"}
            ).status_code
            == 201
        )
    pusher = Pusher(server)
    started = time.perf_counter()
    big = "acme/big/app"
    pusher.start(big)
    builds = TAGS // TAGS_PER_BUILD
    _fill(pusher, ((lambda n=n: pusher.build(big, n, _ci_tags(n))) for n in range(builds)))
    fill_big = time.perf_counter() - started
    with server.client("root") as c:
        for n in range(0, builds, max(1, builds // 1000)):
            assert c.get(f"/v2/{big}/manifests/build-{n}").status_code == 200
    started = time.perf_counter()
    for i in range(IMAGES):
        pusher.start(f"acme/many/img{i}")
    _fill(
        pusher,
        (
            (lambda i=i, n=n: pusher.build(f"acme/many/img{i}", n, [f"build-{n}", f"sha-{n}"]))
            for i in range(IMAGES)
            for n in range(5)
        ),
    )
    fill_many = time.perf_counter() - started
    time.sleep(2)  # pull times flushed
    print(
        f"\nfilled through /v2/: {TAGS} tags in {fill_big:.0f} s, {IMAGES} images in "
        f"{fill_many:.0f} s ({pusher.requests} requests); load {os.getloadavg()}"
    )
    for client in pusher.clients:
        client.close()


def test_preview_at_scale(tmp_path: Path) -> None:
    data = Path(KEPT) if KEPT else Path(tmp_path) / "r"
    # The sizes are part of the mark: a directory kept for other sizes is refused.
    marker = data / f"bench-policies-filled-{TAGS}-{IMAGES}"
    args = ["--pull-flush-interval", "1"]
    if marker.exists():
        server = RegistryServer(data, extra_args=args)
    else:
        if data.exists() and any(data.iterdir()):
            pytest.fail(f"{data} holds something else than this benchmark's fill")
        server = standard_registry(data, extra_args=args)
    server.start()
    try:
        if marker.exists():
            print(f"\nmeasuring the fill kept in {data}; load {os.getloadavg()}")
        else:
            _fill_all(server)
            marker.touch()
        if TAGS:
            path = "/workspaces/acme/repositories/big/policy/previews"
            _measure(server, path, "one image", RULES)
        # Ten tags per image: keep the two newest, so most of each image goes.
        many = [{**RULES[0], "value": 2}, *RULES[1:]]
        _measure(server, "/workspaces/acme/repositories/many/policy/previews", "images", many)
        print(f"  load average after: {os.getloadavg()}")
    finally:
        server.stop()
