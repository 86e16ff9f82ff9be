"""Flat cost: a push or a delete costs the same in an image of 1,000 tags and of
100,000, measured beside CNCF Distribution 2.8 in the same run, through the public
APIs only (nothing is seeded into either registry's storage).

One image is filled through ``/v2/`` at 8 connections, each tag its own small
manifest over one shared config and layer (the way CI systems that tag every build
fill an image), to N = 1,000, 10,000 and 100,000 tags. Then:

* per decade of the fill: per-PUT median and p99, PUT/s and the 503s answered (a
  503 is retried after its Retry-After; the latency counted is the client's, from
  the first attempt to the 201);
* at each N, Berth: a GC review after deleting one tag (``POST /gc/run`` after a
  run that empties the queue; its own ``duration_ms`` and the request's time, medians
  of five) -- it should cost what it reviews (one manifest, its two blobs), not the
  image;
* at each N: single tag delete latency (Berth deletes the tag, Distribution 2.8 can
  only delete by digest), the median of a few deletes on one connection; the
  deleted tags are pushed again (untimed) so the fill goes on from N;
* at the largest N: every tag through Berth's management API in pages of 1,000
  (rich rows: digest, size, platforms, created, other tags), beside Distribution's
  ``tags/list``; then a bulk delete of 1,000 tags: one management API request,
  and 1,000 single deletes through ``/v2/`` at 8 connections on both registries.
  The listings also print the server process's CPU seconds: on a shared machine
  their wall time is mostly the load.

The registries take turns stretch by stretch (Berth, then Distribution, up to the
same N), so both see much the same load. The load average is printed with every
section: the machine is shared.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_flat_cost.py -s``
(``BENCH_FILL`` default 100000 -- about 10 minutes per registry on 2 cores;
``BENCH_CONNECTIONS`` default 8; ``BENCH_DIST_BULK`` default 50: Distribution 2.8
walks every tag for each delete by digest, so 1,000 of them at 100,000 tags would
take an hour; its figure is for that many, and said so).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection

from app.registry import accounts
from tests.support import oci
from tests.support.distribution import DistributionServer, push_blob
from tests.support.registry import PASSWORD, RegistryServer

FILL = int(os.environ.get("BENCH_FILL", "100000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
DIST_BULK = int(os.environ.get("BENCH_DIST_BULK", "50"))
SINGLE_DELETES = 7
GC_ROUNDS = 5
# Berth's upload grace: short, so that a tag deleted for the GC measurement has a
# manifest the review may delete (it waits this long first); not so short that the
# shared blobs, uploaded before the fill, are collected before a manifest holds them
# (2 s was, on a loaded machine).
GRACE = 30.0
BULK = min(1000, FILL // 2)  # two sets of tags: one request, then one at a time
NAME = "bench/big/img"
CHECKPOINTS = sorted({n for n in (1_000, 10_000, 100_000) if n < FILL} | {FILL})

LAYER = oci.random_layer(4_000, "flat-cost-layer")
CONFIG = oci.config([LAYER])


def tag_name(i: int) -> str:
    return f"build-{i:06d}"


def manifest(i: int) -> oci.Blob:
    """Tag i's own manifest: the shared config and layer, told apart by an annotation."""
    return oci.image([LAYER], config_blob=CONFIG, annotations={"build": str(i)}).manifest


def digest_of(i: int) -> str:
    return manifest(i).digest


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Decade:
    """What the PUTs of one stretch of the fill saw."""

    start: int
    end: int
    latencies: list[float] = field(default_factory=list)
    busy: int = 0
    seconds: float = 0.0
    load: str = ""

    @property
    def rate(self) -> float:
        return (self.end - self.start) / self.seconds

    def line(self) -> str:
        ms = [x * 1000 for x in self.latencies]
        return f"{statistics.median(ms):8.2f} {pct(ms, 0.99):8.2f} {self.rate:8.0f} {self.busy:6d}"


@dataclass
class Registry:
    """One registry under test: how to reach it and how it deletes one tag."""

    label: str
    url: str
    auth: tuple[str, str] | None
    by_digest: bool  # Distribution 2.8 deletes manifests by digest only
    decades: list[Decade] = field(default_factory=list)
    deletes: dict[int, list[float]] = field(default_factory=dict)
    gc: dict[int, tuple[float, float]] = field(default_factory=dict)  # s, server ms
    pid: int = 0  # the server process, for its CPU time
    notes: list[str] = field(default_factory=list)

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=self.url, auth=self.auth, timeout=600) as c:
            yield c

    def delete_url(self, i: int) -> str:
        ref = digest_of(i) if self.by_digest else tag_name(i)
        return f"/v2/{NAME}/manifests/{ref}"


def request(client: httpx.Client, method: str, url: str, **kw: object) -> tuple[int, int]:
    """(status, 503s retried): a 503 is retried after its Retry-After."""
    busy = 0
    while True:
        r = client.request(method, url, **kw)  # type: ignore[arg-type]
        if r.status_code != 503:
            return r.status_code, busy
        busy += 1
        time.sleep(float(r.headers.get("retry-after", "1")))


def put(client: httpx.Client, i: int) -> tuple[float, int]:
    started = time.perf_counter()
    status, busy = request(
        client,
        "PUT",
        f"/v2/{NAME}/manifests/{tag_name(i)}",
        content=manifest(i).data,
        headers={"Content-Type": oci.OCI_MANIFEST},
    )
    assert status == 201, (i, status)
    return time.perf_counter() - started, busy


def parallel(reg: Registry, items: list[int], work: Callable[[httpx.Client, int], object]) -> None:
    """``work`` for every item, on CONNECTIONS connections (one client per thread).
    A failure (or Ctrl-C) stops the other threads at their next item."""
    lock = threading.Lock()
    todo = iter(items)
    stop = threading.Event()

    def worker() -> None:
        with reg.client() as client:
            while not stop.is_set():
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                work(client, i)

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        try:
            for f in [pool.submit(worker) for _ in range(CONNECTIONS)]:
                f.result()
        finally:
            stop.set()


def fill(reg: Registry, start: int, end: int) -> Decade:
    decade = Decade(start, end)
    lock = threading.Lock()

    def one(client: httpx.Client, i: int) -> None:
        took, busy = put(client, i)
        with lock:
            decade.latencies.append(took)
            decade.busy += busy

    began = time.perf_counter()
    parallel(reg, list(range(start, end)), one)
    decade.seconds = time.perf_counter() - began
    decade.load = load()
    return decade


def single_deletes(reg: Registry, n: int) -> list[float]:
    """A few deletes of tags spread over the image, one at a time; then those tags
    are pushed again so the image holds n tags for what follows."""
    picks = [n * k // (SINGLE_DELETES + 1) for k in range(1, SINGLE_DELETES + 1)]
    times = []
    with reg.client() as client:
        for i in picks:
            started = time.perf_counter()
            status, _busy = request(client, "DELETE", reg.delete_url(i))
            times.append(time.perf_counter() - started)
            assert status == 202, (reg.label, i, status)
        for i in picks:
            put(client, i)
    return times


def list_tags_v2(reg: Registry) -> tuple[float, int]:
    with reg.client() as client:
        started = time.perf_counter()
        count = len(oci.follow_links(client, f"/v2/{NAME}/tags/list?n=1000", "tags"))
        return time.perf_counter() - started, count


def list_tags_api(reg: Registry) -> tuple[float, int]:
    with reg.client() as client:
        found = client.get("/api/v1/workspaces/bench/images").json()["items"]
        image_id = next(i["id"] for i in found if i["name"] == "img")
        started = time.perf_counter()
        count, cursor = 0, ""
        while True:
            r = client.get(
                f"/api/v1/images/{image_id}/tags", params={"limit": 1000, "cursor": cursor}
            )
            assert r.status_code == 200, r.text
            page = r.json()
            count += len(page["items"])
            assert all(t["size"] and t["platforms"] and t["created"] for t in page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return time.perf_counter() - started, count


def bulk_api(reg: Registry, tags: list[int]) -> float:
    with reg.client() as client:
        found = client.get("/api/v1/workspaces/bench/images").json()["items"]
        image = next(i for i in found if i["name"] == "img")
        started = time.perf_counter()
        r = client.post(
            f"/api/v1/images/{image['id']}/tags/delete",
            json={"tags": [tag_name(i) for i in tags]},
            headers={"If-Match": image["etag"]},  # as listed: a stale id never hits another
        )
        took = time.perf_counter() - started
        assert r.status_code == 200, r.text
        assert r.json()["deleted"] == len(tags), r.text
        return took


def bulk_v2(reg: Registry, tags: list[int]) -> float:
    def one(client: httpx.Client, i: int) -> None:
        status, _busy = request(client, "DELETE", reg.delete_url(i))
        assert status == 202, (reg.label, i, status)

    started = time.perf_counter()
    parallel(reg, tags, one)
    return time.perf_counter() - started


def push_blobs(reg: Registry) -> None:
    with reg.client() as client:
        if reg.auth is None:
            for blob in (CONFIG, LAYER):
                push_blob(client, NAME, blob)
        else:
            for blob in (CONFIG, LAYER):
                r = client.post(
                    f"/v2/{NAME}/blobs/uploads/",
                    params={"digest": blob.digest},
                    content=blob.data,
                    headers={"Content-Type": "application/octet-stream"},
                )
                assert r.status_code == 201, r.text


def gc_review(reg: Registry, n: int) -> tuple[float, float]:
    """Delete one tag (its manifest past the grace), then time the GC run that reviews
    it -- after a run that empties the queue of what came before; GC_ROUNDS times,
    medians of the request's time (s) and of the run's own duration_ms. The tags are
    pushed again afterwards."""
    picks = [n // 2 + k for k in range(1, GC_ROUNDS + 1)]  # not the single deletes' picks
    time.sleep(GRACE + 0.5)
    took, server = [], []
    with reg.client() as client:
        for i in picks:
            r = client.post("/api/v1/workspaces/bench/gc/run")
            assert r.status_code == 200, r.text
            status, _busy = request(client, "DELETE", reg.delete_url(i))
            assert status == 202, (i, status)
            started = time.perf_counter()
            r = client.post("/api/v1/workspaces/bench/gc/run")
            took.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
            run = r.json()
            assert run["manifests_deleted"] == 1, run  # the review deleted what it reviewed
            server.append(run["duration_ms"])
        for i in picks:
            put(client, i)
    return statistics.median(took), statistics.median(server)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (the listings' cost, whatever the load)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def finish(reg: Registry) -> dict[str, float]:
    """At the largest N: listings, then the bulk deletes."""
    out: dict[str, float] = {}
    cpu = cpu_seconds(reg.pid)
    out["list_v2"], count = list_tags_v2(reg)
    out["list_v2_cpu"] = cpu_seconds(reg.pid) - cpu
    assert count == FILL, count
    if not reg.by_digest:
        cpu = cpu_seconds(reg.pid)
        out["list_api"], count = list_tags_api(reg)
        out["list_api_cpu"] = cpu_seconds(reg.pid) - cpu
        assert count == FILL, count
        out["bulk_api"] = bulk_api(reg, list(range(0, BULK)))
    count = BULK if not reg.by_digest else min(DIST_BULK, BULK)
    if count:
        out["bulk_v2"] = bulk_v2(reg, list(range(BULK, BULK + count)))
        out["bulk_count"] = count
    out["load"] = os.getloadavg()[0]
    return out


@pytest.mark.timeout(4 * 3600)  # two registries filled to 100,000 tags
def test_flat_cost(tmp_path: Path) -> None:
    berth_server = RegistryServer(tmp_path / "berth", upload_grace=GRACE)

    def seed(c: Connection) -> None:  # accounts only: nothing measured is seeded
        accounts.add_workspace(c, "bench")
        accounts.add_project(c, "bench", "PLAT")
        accounts.add_repository(c, "bench", "big", "PLAT")
        accounts.add_user(c, "bench", PASSWORD, superuser=True)

    berth_server.seed(seed)
    dist_server = DistributionServer(tmp_path / "dist", tls=False, auth=False)
    berth_server.start()
    dist_server.start()
    print(f"\nfilling one image to {FILL:,} tags at {CONNECTIONS} connections ({load()})")
    try:
        berth = Registry("Berth", berth_server.url, ("bench", PASSWORD), by_digest=False)
        dist = Registry("Distribution", dist_server.url, None, by_digest=True)
        assert berth_server.process is not None
        assert dist_server.process is not None
        berth.pid, dist.pid = berth_server.process.proc.pid, dist_server.process.pid
        both = (berth, dist)
        for reg in both:
            push_blobs(reg)
        done = 0
        for n in CHECKPOINTS:
            for reg in both:
                reg.decades.append(fill(reg, done, n))
                if not reg.by_digest:
                    reg.gc[n] = gc_review(reg, n)
                reg.deletes[n] = single_deletes(reg, n)
                print(
                    f"  {reg.label}: {n:,} tags, {reg.decades[-1].line()}  ({load()})", flush=True
                )
            done = n
        results = {reg.label: finish(reg) for reg in both}
    finally:
        berth_server.stop()
        dist_server.stop()

    print(f"\nPUT through /v2/ at {CONNECTIONS} connections, one image, per stretch of the fill")
    print(
        f"{'tags':>17} | {'Berth median p99 ms':>19} {'PUT/s':>8} {'503s':>6} | "
        f"{'Distribution median p99 ms':>26} {'PUT/s':>8} {'503s':>6} | "
        f"{'PUT/s ratio':>11} | load (1 5 15 min)"
    )
    for ours, theirs in zip(berth.decades, dist.decades, strict=True):
        stretch = f"{ours.start + 1:,}-{ours.end:,}"
        print(
            f"{stretch:>17} | {ours.line()} | {theirs.line():>41} | "
            f"{ours.rate / theirs.rate:10.2f}x | {ours.load} / {theirs.load}"
        )
    first, last = berth.decades[0], berth.decades[-1]
    growth = statistics.median(last.latencies) / statistics.median(first.latencies)
    print(f"Berth median PUT at {last.end:,} / at {first.end:,}: {growth:.2f}x (target <= 1.5x)")

    print("\nSingle tag delete, one connection (median ms; Distribution by digest)")
    for n in CHECKPOINTS:
        b = statistics.median(berth.deletes[n]) * 1000
        d = statistics.median(dist.deletes[n]) * 1000
        print(f"{n:>9,} tags: Berth {b:8.2f}   Distribution {d:9.2f}   ratio {d / b:7.1f}x")

    print(
        f"\nBerth GC review after deleting one tag (run now; the run before it emptied the"
        f" queue), median of {GC_ROUNDS}"
    )
    for n in CHECKPOINTS:
        took, server_ms = berth.gc[n]
        print(f"{n:>9,} tags: request {took * 1000:8.2f} ms   run duration_ms {server_ms:6.1f}")

    rb, rd = results["Berth"], results["Distribution"]
    print(f"\nAt {FILL:,} tags (seconds; listings also the server process's CPU seconds)")
    print(
        f"  every tag, pages of 1000, Berth API (rich rows)   {rb['list_api']:8.3f}"
        f"   server CPU {rb['list_api_cpu']:6.2f}"
    )
    print(
        f"  every tag, tags/list n=1000, Berth                {rb['list_v2']:8.3f}"
        f"   server CPU {rb['list_v2_cpu']:6.2f}"
    )
    print(
        f"  every tag, tags/list n=1000, Distribution         {rd['list_v2']:8.3f}"
        f"   server CPU {rd['list_v2_cpu']:6.2f}"
    )
    print(f"  bulk delete of {BULK:,} tags, Berth API (1 request)    {rb['bulk_api']:8.3f}")
    print(f"  {BULK:,} deletes via /v2/ at {CONNECTIONS} connections, Berth  {rb['bulk_v2']:8.3f}")
    if "bulk_v2" in rd:
        print(
            f"  {int(rd['bulk_count']):,} deletes by digest at {CONNECTIONS}, Distribution"
            f"      {rd['bulk_v2']:8.3f}"
        )
    print(f"  ({load()})")
