"""Recently deleted (issue 13): what the trash costs, through /v2/ and /api/v1 only.

Two registries side by side in one run, ``--trash-retention 0`` (off) and ``3600``
(on), each with one image of ``BENCH_TAGS`` tags, each tag on its own manifest
(config and a layer of its own over a shared base layer):

1. bulk tag delete: ``POST /images/{id}/tags/delete`` of 100 tags, median per call;
2. a push moving a tag to another manifest (``PUT /v2/.../manifests/TAG``), median;
3. with the trash on: the trash's first page (1,000 entries) and all its pages, and
   restoring 100 tags per ``POST .../trash/restore``, median per call.

Prints medians, the on/off ratios measured in the same run, and the load average.
Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_trash.py -s``
(``BENCH_TAGS`` default 1000).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from tests.support import oci
from tests.support.api import api, as_listed
from tests.support.registry import RegistryServer

TAGS = int(os.environ.get("BENCH_TAGS", "1000"))
NAME = "acme/web/bench"
BASE = oci.random_layer(4_000, "bench-trash-base")


def _img(n: int) -> oci.Image:
    return oci.image([BASE, oci.random_layer(200, f"bench-trash-{n}")], label=f"b{n}")


def _seed(server: RegistryServer, images: list[oci.Image]) -> int:
    with server.client("root") as c:
        for n, img in enumerate(images):
            oci.push(c, NAME, img, f"t{n}")
    with api(server) as c:
        items = c.get("/workspaces/acme/images", params={"q": "bench"}).json()["items"]
        return int(items[0]["id"])


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _delete(server: RegistryServer, image_id: int, tags: list[str]) -> float:
    with api(server) as c:
        headers = as_listed(c, image_id)

        def call() -> None:
            r = c.post(f"/images/{image_id}/tags/delete", json={"tags": tags}, headers=headers)
            assert r.json()["deleted"] == len(tags), r.text

        return _timed(call)


def _move(server: RegistryServer, tag: str, img: oci.Image) -> float:
    with server.client("root") as c:
        return _timed(lambda: oci.push(c, NAME, img, tag))


def test_trash_costs(registry_factory: Callable[..., RegistryServer], tmp_path: Path) -> None:
    images = [_img(n) for n in range(TAGS)]
    movers = [_img(TAGS + n) for n in range(50)]
    servers = {
        "off": registry_factory(trash_retention=0),
        "on": registry_factory(trash_retention=3600),
    }
    ids = {k: _seed(s, images) for k, s in servers.items()}
    for s in servers.values():  # the movers' blobs uploaded once, untimed
        with s.client("root") as c:
            for img in movers:
                oci.push(c, NAME, img)
    deletes: dict[str, list[float]] = {"off": [], "on": []}
    moves: dict[str, list[float]] = {"off": [], "on": []}
    batches = [
        [f"t{n}" for n in range(i, min(i + 100, TAGS // 2))] for i in range(0, TAGS // 2, 100)
    ]
    for batch in batches:
        for k, s in servers.items():  # alternate: the machine's load hits both alike
            deletes[k].append(_delete(s, ids[k], batch))
    for n, img in enumerate(movers):
        for k, s in servers.items():
            moves[k].append(_move(s, f"t{TAGS - 1 - n}", img))
    on = servers["on"]
    with api(on) as c:
        first = _timed(lambda: c.get("/workspaces/acme/trash", params={"limit": 1000}))
        started = time.perf_counter()
        entries: list[dict[str, object]] = []
        cursor = None
        while True:
            page = c.get(
                "/workspaces/acme/trash",
                params={"limit": 1000, **({"cursor": cursor} if cursor else {})},
            ).json()
            entries += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        all_pages = time.perf_counter() - started
        tag_entries = [x for x in entries if x["kind"] == "tag" and x["action"] == "tag.delete"]
        restores = []
        for i in range(0, len(tag_entries), 100):
            chunk = [{"id": x["id"]} for x in tag_entries[i : i + 100]]

            def restore(chunk: list[dict[str, object]] = chunk) -> None:
                r = c.post("/workspaces/acme/trash/restore", json={"entries": chunk})
                assert r.json()["restored"] == len(chunk), r.text

            restores.append(_timed(restore))
    med = {k: statistics.median(v) for k, v in deletes.items()}
    mov = {k: statistics.median(v) for k, v in moves.items()}
    print(f"\ntrash bench, {TAGS} tags, load average {os.getloadavg()}")
    print(
        f"bulk delete of 100 tags: off {med['off'] * 1000:.0f} ms, on {med['on'] * 1000:.0f} ms "
        f"(ratio {med['on'] / med['off']:.2f}; {len(batches)} calls each)"
    )
    print(
        f"push moving a tag: off {mov['off'] * 1000:.1f} ms, on {mov['on'] * 1000:.1f} ms "
        f"(ratio {mov['on'] / mov['off']:.2f}; {len(movers)} pushes each)"
    )
    print(
        f"trash of {len(entries)} entries: first page {first * 1000:.0f} ms, all pages "
        f"{all_pages * 1000:.0f} ms; restore 100 tags per call: median "
        f"{statistics.median(restores) * 1000:.0f} ms ({len(restores)} calls, "
        f"{sum(restores):.1f} s in all)"
    )
    assert len(entries) >= TAGS // 2
