"""Push and pull throughput with skopeo: Berth against CNCF Distribution 2.8.

A 256 MiB image (4 layers of incompressible data) is pushed to and pulled from
both registries on this machine in the same run; each round starts fresh
registries, so no push can skip a layer the previous round left behind. Prints
MB/s (median of the rounds) for both and the ratio Berth / Distribution.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_push_pull.py -s``
(``BENCH_ROUNDS`` sets the number of rounds, default 5).
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support import oci
from tests.support.registry import PASSWORD, standard_registry
from tests.support.tools import require

LAYERS = 4
LAYER_SIZE = 64 * 1024 * 1024
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def distribution(root: Path) -> Iterator[str]:
    """docker-registry 2.8 with filesystem storage under ``root``; yields host:port."""
    binary = require("docker-registry")
    port = _free_port()
    root.mkdir(parents=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("docker-registry did not start")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)


@contextmanager
def berth(root: Path) -> Iterator[str]:
    server = standard_registry(root).start()
    try:
        yield server.host
    finally:
        server.stop()


def _skopeo(*args: str) -> float:
    # Start from a quiet disk: Distribution never fsyncs, so without this whoever runs
    # next would pay for writing back the bytes it (or skopeo's pull) left dirty.
    os.sync()
    start = time.perf_counter()
    result = subprocess.run(
        [require("skopeo"), "copy", "--quiet", *args], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    return elapsed


def _round(kind: str, tmp: Path, layout: Path) -> tuple[float, float]:
    """One fresh registry: push the image, then pull it back; returns the two times."""
    creds = ["--dest-creds", f"writer:{PASSWORD}"] if kind == "berth" else []
    src_creds = ["--src-creds", f"writer:{PASSWORD}"] if kind == "berth" else []
    start = berth if kind == "berth" else distribution
    with start(tmp / "registry") as host:
        ref = f"docker://{host}/acme/web/bench:v1"
        push = _skopeo("--dest-tls-verify=false", *creds, f"oci:{layout}:v1", ref)
        out = tmp / "pulled"
        pull = _skopeo("--src-tls-verify=false", *src_creds, ref, f"oci:{out}:v1")
        shutil.rmtree(out)
    return push, pull


def test_push_pull_throughput_against_distribution(tmp_path: Path) -> None:
    layers = [oci.random_layer(LAYER_SIZE, f"bench{i}") for i in range(LAYERS)]
    img = oci.image(layers)
    layout = oci.write_layout(tmp_path / "layout", {"v1": img})
    total = img.compressed_size
    times: dict[str, dict[str, list[float]]] = {
        k: {"push": [], "pull": []} for k in ("berth", "distribution")
    }
    for n in range(ROUNDS):
        # Alternate which registry goes first so drift in the machine's load is shared.
        order = ("berth", "distribution") if n % 2 == 0 else ("distribution", "berth")
        for kind in order:
            work = tmp_path / f"{kind}-{n}"
            push, pull = _round(kind, work, layout)
            shutil.rmtree(work)
            times[kind]["push"].append(push)
            times[kind]["pull"].append(pull)

    mb = total / 1e6
    print(f"\nimage: {LAYERS} layers, {mb:.0f} MB; median of {ROUNDS} rounds (skopeo copy)")
    rates = {}
    for kind, by_op in times.items():
        for op, samples in by_op.items():
            rates[kind, op] = mb / statistics.median(samples)
            runs = ", ".join(f"{s:.2f}s" for s in samples)
            print(f"  {kind:<12} {op}: {rates[kind, op]:7.1f} MB/s  ({runs})")
    for op in ("push", "pull"):
        ratio = rates["berth", op] / rates["distribution", op]
        print(f"  ratio berth/distribution {op}: {ratio:.2f}x (target >= 0.80x)")
