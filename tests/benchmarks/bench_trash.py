"""Recently deleted (issue 13): what the trash costs, through /v2/ and /api/v1 only.

Two registries side by side in one run, ``--trash-retention 0`` (off) and ``3600``
(on), each with one image of ``BENCH_TAGS`` tags, each tag on its own manifest
(config and a layer of its own over a shared base layer):

1. bulk tag delete: ``POST /images/{id}/tags/delete`` of 100 tags, median per call;
2. a push moving a tag to another manifest (``PUT /v2/.../manifests/TAG``), median;
3. with the trash on: the trash's first page (1,000 entries; median of ``BENCH_ROUNDS``)
   and all its pages, and restoring 100 tags per ``POST .../trash/restore``, median
   per call.

Prints medians, the on/off ratios measured in the same run, and the load average.
Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_trash.py -s``
(``BENCH_TAGS`` default 1000).

``test_trash_at_scale`` is issue 13's figure: one registry with the trash on, one
image filled through ``/v2/`` as ``bench_flat_cost.py`` fills it (``BENCH_TRASH``
tags, default 100,000, each its own manifest, at ``BENCH_CONNECTIONS``), then every
tag deleted through the bulk API (1,000 per call), so the trash holds BENCH_TRASH
entries. Measured: the trash's first page (median of ``BENCH_ROUNDS``, default 5),
all its pages (median of 3, every entry seen once), and restoring ``BENCH_RESTORE``
tags (default 1,000, spread over the trash) 100 per call, each checked afterwards by
a GET of its manifest through ``/v2/``; the walks and the restores also print the
server process's CPU seconds (on a shared machine their wall time is mostly the
load); then they are deleted again (untimed) so the
trash is as it was. ``BENCH_DATA=DIR`` keeps that registry's data: the first run
fills and empties the image into the trash and marks DIR; later runs measure it
again without filling. ``BENCH_PROFILE=DIR`` then walks all pages once more and
restores the same tags once more, each under py-spy attached to the server process
(``py-spy`` in the venv; speedscope JSON in DIR: ``listing.json``, ``restore.json``),
and deletes those tags again.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection

from app.registry import accounts
from tests.benchmarks.bench_flat_cost import (
    Registry,
    cpu_seconds,
    digest_of,
    fill,
    push_blobs,
    tag_name,
)
from tests.support import oci
from tests.support.api import api, as_listed
from tests.support.registry import PASSWORD, RegistryServer

TAGS = int(os.environ.get("BENCH_TAGS", "1000"))
AT_SCALE = int(os.environ.get("BENCH_TRASH", "100000"))
RESTORE = int(os.environ.get("BENCH_RESTORE", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
KEPT = os.environ.get("BENCH_DATA")
PROFILE = os.environ.get("BENCH_PROFILE")
# Long enough that a kept fill's entries do not expire between runs.
RETENTION_S = 90 * 24 * 3600
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
        # The route's first request also pays FastAPI's set-up of it: a median.
        first = statistics.median(
            _timed(lambda: c.get("/workspaces/acme/trash", params={"limit": 1000}))
            for _ in range(ROUNDS)
        )
        started = time.perf_counter()
        entries = _walk(c, "acme")
        all_pages = time.perf_counter() - started
        tag_entries = [x for x in entries if x["kind"] == "tag" and x["action"] == "tag.delete"]
        chunks = [tag_entries[i : i + 100] for i in range(0, len(tag_entries), 100)]
        restores = _restore(c, "acme", chunks)
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
        f"trash of {len(entries)} entries: first page {first * 1000:.0f} ms (median of "
        f"{ROUNDS}), all pages "
        f"{all_pages * 1000:.0f} ms; restore 100 tags per call: median "
        f"{statistics.median(restores) * 1000:.0f} ms ({len(restores)} calls, "
        f"{sum(restores):.1f} s in all)"
    )
    assert len(entries) >= TAGS // 2


# At scale (issue 13's figure) ----------------------------------------------------------


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def _accounts(c: Connection) -> None:  # accounts only: nothing measured is seeded
    accounts.add_workspace(c, "bench")
    accounts.add_project(c, "bench", "PLAT")
    accounts.add_repository(c, "bench", "big", "PLAT")
    accounts.add_user(c, "bench", PASSWORD, superuser=True)


def _client(server: RegistryServer) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/api/v1", auth=("bench", PASSWORD), timeout=600)


def _image_id(c: httpx.Client) -> int:
    items = c.get("/workspaces/bench/images").json()["items"]
    return int(next(i["id"] for i in items if i["name"] == "img"))


def _bulk_delete(c: httpx.Client, image_id: int, tags: list[str]) -> list[float]:
    """Delete these tags through the bulk API, 1,000 per call; the time of each call."""
    took = []
    for i in range(0, len(tags), 1000):
        chunk = tags[i : i + 1000]
        headers = as_listed(c, image_id)
        started = time.perf_counter()
        r = c.post(f"/images/{image_id}/tags/delete", json={"tags": chunk}, headers=headers)
        took.append(time.perf_counter() - started)
        assert r.status_code == 200, r.text
        assert r.json()["deleted"] == len(chunk), r.text
    return took


def _walk(c: httpx.Client, ws: str) -> list[dict[str, Any]]:
    """Every entry of the workspace's trash, in pages of 1,000."""
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = c.get(
            f"/workspaces/{ws}/trash",
            params={"limit": 1000, **({"cursor": cursor} if cursor else {})},
        )
        assert r.status_code == 200, r.text
        page = r.json()
        entries += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return entries


def _restore(c: httpx.Client, ws: str, chunks: list[list[dict[str, Any]]]) -> list[float]:
    """Restore each chunk of entries in one call; the time of each call."""
    took = []
    for chunk in chunks:
        body = {"entries": [{"id": x["id"]} for x in chunk]}
        started = time.perf_counter()
        r = c.post(f"/workspaces/{ws}/trash/restore", json=body)
        took.append(time.perf_counter() - started)
        assert r.status_code == 200, r.text
        assert r.json()["restored"] == len(chunk), r.text
    return took


def _pulled(server: RegistryServer, restored: list[dict[str, Any]]) -> None:
    """Every restored tag answers its old manifest through /v2/."""
    with httpx.Client(base_url=server.url, auth=("bench", PASSWORD), timeout=600) as c:
        for x in restored:
            r = c.get(
                f"/v2/bench/big/img/manifests/{x['tag']}", headers={"Accept": oci.OCI_MANIFEST}
            )
            assert r.status_code == 200, (x, r.status_code)
            assert r.headers["Docker-Content-Digest"] == x["digest"], x
            assert x["digest"] == digest_of(int(x["tag"].split("-")[1])), x


@contextmanager
def _py_spy(pid: int, out: Path) -> Iterator[None]:
    """py-spy records the server process meanwhile (Ctrl-C, as to the CLI, ends it)."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    proc = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--rate", "200", "--format", "speedscope",
         "--output", out, "--nonblocking"],
    )  # fmt: skip
    time.sleep(2)  # attached before the first request
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


@pytest.mark.timeout(4 * 3600)
def test_trash_at_scale(tmp_path: Path) -> None:
    data = Path(KEPT) if KEPT else tmp_path / "berth"
    marker = data / f"bench-trash-filled-{AT_SCALE}"
    server = RegistryServer(data, trash_retention=RETENTION_S)
    if not marker.exists():
        if data.exists() and any(data.iterdir()):
            pytest.fail(f"{data} holds something else than this benchmark's fill")
        server.seed(_accounts)
    server.start()
    try:
        assert server.process is not None
        pid = server.process.proc.pid
        with _client(server) as c:
            if not marker.exists():
                reg = Registry("Berth", server.url, ("bench", PASSWORD), by_digest=False)
                push_blobs(reg)
                filled = fill(reg, 0, AT_SCALE)
                print(f"\nfilled {AT_SCALE:,} tags in {filled.seconds:.0f} s ({_load()})")
                image_id = _image_id(c)
                took = _bulk_delete(c, image_id, [tag_name(i) for i in range(AT_SCALE)])
                print(
                    f"deleted them through the bulk API: {len(took)} calls of 1,000, median "
                    f"{statistics.median(took):.2f} s, {sum(took):.0f} s in all ({_load()})"
                )
                marker.touch()
            image_id = _image_id(c)
            print(f"\ntrash of {AT_SCALE:,} tag entries, trash on ({_load()})")
            firsts = []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                r = c.get("/workspaces/bench/trash", params={"limit": 1000})
                firsts.append(time.perf_counter() - started)
                assert r.status_code == 200, r.text
                assert len(r.json()["items"]) == min(1000, AT_SCALE)
                assert r.json()["total"] == AT_SCALE, r.json()["total"]
            print(
                f"  first page of 1,000: median {statistics.median(firsts) * 1000:.0f} ms; "
                f"runs {', '.join(f'{t * 1000:.0f}' for t in firsts)} ms ({_load()})"
            )
            walks, walk_cpus = [], []
            for _ in range(3):
                cpu = cpu_seconds(pid)
                started = time.perf_counter()
                entries = _walk(c, "bench")
                walks.append(time.perf_counter() - started)
                walk_cpus.append(cpu_seconds(pid) - cpu)
                assert len(entries) == AT_SCALE, len(entries)
                assert len({x["id"] for x in entries}) == AT_SCALE
            print(
                f"  all pages ({len(entries):,} entries seen, each once): median "
                f"{statistics.median(walks):.2f} s "
                f"(server CPU {statistics.median(walk_cpus):.2f} s); "
                f"runs {', '.join(f'{t:.2f}' for t in walks)} s ({_load()})"
            )
            step = max(1, len(entries) // RESTORE)
            picked = entries[::step][:RESTORE]
            assert all(x["kind"] == "tag" for x in picked)
            chunks = [picked[i : i + 100] for i in range(0, len(picked), 100)]
            cpu = cpu_seconds(pid)
            took = _restore(c, "bench", chunks)
            cpu = cpu_seconds(pid) - cpu
            print(
                f"  restore {len(picked):,} tags, 100 per call: median "
                f"{statistics.median(took) * 1000:.0f} ms per call "
                f"({statistics.median(took) * 10:.1f} ms per tag), {sum(took):.1f} s in all "
                f"(server CPU {cpu:.1f} s); "
                f"calls {', '.join(f'{t:.2f}' for t in took)} s ({_load()})"
            )
            _pulled(server, picked)
            print(f"  every restored tag GETs its old manifest through /v2/ ({_load()})")
            tags = [str(x["tag"]) for x in picked]
            again = _bulk_delete(c, image_id, tags)  # the trash as it was, for the next run
            print(f"  deleted again: {sum(again):.2f} s for {len(tags):,} tags ({_load()})")
            if PROFILE:
                out = Path(PROFILE)
                out.mkdir(parents=True, exist_ok=True)
                with _py_spy(pid, out / "listing.json"):
                    assert len(_walk(c, "bench")) == AT_SCALE
                wanted = set(tags)
                back = {x["tag"]: x for x in _walk(c, "bench") if x["tag"] in wanted}
                chunks = [[back[t] for t in tags[i : i + 100]] for i in range(0, len(tags), 100)]
                with _py_spy(pid, out / "restore.json"):
                    took = _restore(c, "bench", chunks)
                print(
                    f"  under py-spy: restore median {statistics.median(took) * 1000:.0f} ms "
                    f"per call; profiles in {out} ({_load()})"
                )
                _bulk_delete(c, image_id, tags)
    finally:
        server.stop()
