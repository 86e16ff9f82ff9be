"""Manifest pull latency and throughput through /v2/, with pull tracking and
without it (a peer registry built from another tree, e.g. main before tracking).

Each round starts a fresh registry of each build (set up through its own CLI),
pushes one image under 20 tags, then 8 client threads pull manifests by tag (GET
with keep-alive) for ``BENCH_PULLS`` requests in all; a second phase does the same
with HEAD by digest. The two builds alternate round by round so load on the shared
machine hits both alike. Prints per build the medians over rounds of: requests per
second, median and 95th-percentile latency; the ratio tracked / peer; and the load
average before and after.

Run on demand::

    BENCH_PEER_BIN=/work/main/.venv/bin .venv/bin/pytest tests/benchmarks/bench_pulls.py -s

(``BENCH_ROUNDS`` default 5, ``BENCH_PULLS`` default 4000). Without
``BENCH_PEER_BIN`` only this tree's registry is measured.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.support import oci
from tests.support.processes import VENV_BIN, ServerProcess

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PULLS = int(os.environ.get("BENCH_PULLS", "4000"))
THREADS = 8
TAGS = 20
PASSWORD = "bench-password-1"
NAME = "bench/repo/app"


def _cli(bin_dir: Path, data: Path, *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [str(bin_dir / "berth-registry"), *args, "--data", str(data)],
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
    )


def _start(bin_dir: Path, data: Path) -> ServerProcess:
    _cli(bin_dir, data, "init")
    _cli(bin_dir, data, "user", "add", "bench", "--password-stdin", "--superuser", stdin=PASSWORD)
    _cli(bin_dir, data, "workspace", "add", "bench")
    _cli(bin_dir, data, "project", "add", "bench", "P")
    _cli(bin_dir, data, "repository", "add", "bench", "repo", "--project", "P")
    return ServerProcess(
        [str(bin_dir / "berth-registry"), "serve", "--data", str(data), "--port", "0"]
    )


def _phase(url: str, paths: list[str], method: str) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = PULLS // THREADS

    def worker(k: int) -> None:
        mine: list[float] = []
        with httpx.Client(base_url=url, auth=("bench", PASSWORD), timeout=60) as c:
            for i in range(per_thread):
                path = paths[(i + k) % len(paths)]
                started = time.perf_counter()
                r = c.request(method, path, headers={"Accept": oci.OCI_MANIFEST})
                mine.append(time.perf_counter() - started)
                assert r.status_code == 200, r.text
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def _round(bin_dir: Path, data: Path) -> dict[str, tuple[float, float, float]]:
    server = _start(bin_dir, data)
    try:
        img = oci.image([oci.random_layer(4096, "bench")], label="bench")
        with httpx.Client(base_url=server.url, auth=("bench", PASSWORD), timeout=60) as c:
            for k in range(TAGS):
                oci.push(c, NAME, img, f"t{k}")
        out = {}
        for label, method, paths in (
            ("GET by tag", "GET", [f"/v2/{NAME}/manifests/t{k}" for k in range(TAGS)]),
            ("HEAD by digest", "HEAD", [f"/v2/{NAME}/manifests/{img.digest}"]),
        ):
            rate, lat = _phase(server.url, paths, method)
            lat.sort()
            out[label] = (rate, statistics.median(lat), lat[int(len(lat) * 0.95)])
        return out
    finally:
        server.stop()


def test_pull_throughput(tmp_path: Path) -> None:
    builds = {"tracked (this tree)": VENV_BIN}
    peer = os.environ.get("BENCH_PEER_BIN")
    if peer:
        builds["peer " + peer] = Path(peer)
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, tuple[float, float, float]]]] = {b: [] for b in builds}
    for n in range(ROUNDS):
        for build, bin_dir in builds.items():
            results[build].append(
                _round(bin_dir, tmp_path / f"{n}-{len(results[build])}-{id(build)}")
            )
    load_after = os.getloadavg()
    print(f"\n{PULLS} pulls per phase, {THREADS} threads, {ROUNDS} rounds (medians)")
    summary: dict[str, dict[str, float]] = {}
    for build, rounds in results.items():
        for phase in rounds[0]:
            rate = statistics.median(r[phase][0] for r in rounds)
            p50 = statistics.median(r[phase][1] for r in rounds)
            p95 = statistics.median(r[phase][2] for r in rounds)
            summary.setdefault(phase, {})[build] = rate
            print(
                f"  {build:<40} {phase:<15} {rate:8.0f} req/s  "
                f"p50 {p50 * 1000:6.2f} ms  p95 {p95 * 1000:6.2f} ms"
            )
    if peer:
        for phase, rates in summary.items():
            values = list(rates.values())
            print(f"  {phase}: tracked / peer throughput = {values[0] / values[1]:.3f}")
    print(f"  load average before {load_before}, after {load_after}")
