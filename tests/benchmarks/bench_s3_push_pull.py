"""Push and pull throughput with blobs in object storage: Berth on SeaweedFS against
CNCF Distribution 2.8 with its ``s3`` storage driver on the same SeaweedFS.

A 256 MiB image (4 layers of incompressible data) is pushed with skopeo and pulled
back, each round into fresh registries and fresh buckets, in the same run and
alternating who goes first. Pulls are measured both ways each registry can serve
them: streamed through the registry (Berth's default; Distribution with
``redirect: disable``) and redirected to presigned URLs of the store (Berth with
``--redirect-blobs``; Distribution's default). Prints MB/s (median of the rounds),
the ratios Berth / Distribution, and the load average.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_s3_push_pull.py -s``
(``BENCH_ROUNDS`` sets the rounds, default 3).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support import oci
from tests.support.distribution import free_port
from tests.support.registry import PASSWORD, standard_registry
from tests.support.seaweedfs import ACCESS_KEY, REGION, SECRET_KEY, SeaweedS3
from tests.support.tools import require

LAYERS = 4
LAYER_SIZE = 64 * 1024 * 1024
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
KINDS = ("berth", "berth-redirect", "distribution", "distribution-stream")


@contextmanager
def distribution(root: Path, s3: SeaweedS3, bucket: str, *, redirect: bool) -> Iterator[str]:
    """docker-registry 2.8 with the s3 driver on ``bucket``; yields host:port."""
    binary = require("docker-registry")
    port = free_port()
    root.mkdir(parents=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        "storage:\n"
        "  s3:\n"
        f"    accesskey: {ACCESS_KEY}\n"
        f"    secretkey: {SECRET_KEY}\n"
        f"    region: {REGION}\n"
        f"    regionendpoint: {s3.endpoint}\n"
        f"    bucket: {bucket}\n"
        "    secure: false\n"
        "    v4auth: true\n"
        "    rootdirectory: /dist\n"
        "  delete:\n    enabled: true\n"
        f"  redirect:\n    disable: {'false' if redirect else 'true'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    # Its AWS SDK fails to start when AWS_CA_BUNDLE is set (even for plain HTTP).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(
        [binary, "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
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
def berth(root: Path, s3: SeaweedS3, bucket: str, *, redirect: bool) -> Iterator[str]:
    server = standard_registry(
        root,
        blob_store=f"s3://{bucket}",
        env=s3.env,
        extra_args=["--redirect-blobs"] if redirect else [],
    ).start()
    try:
        yield server.host
    finally:
        server.stop()


def _skopeo(*args: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [require("skopeo"), "copy", "--quiet", *args], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    return elapsed


def _round(kind: str, tmp: Path, layout: Path, s3: SeaweedS3) -> tuple[float, float]:
    bucket = s3.create_bucket(f"bench-{uuid.uuid4().hex[:10]}")
    is_berth = kind.startswith("berth")
    creds = ["--dest-creds", f"writer:{PASSWORD}"] if is_berth else []
    src_creds = ["--src-creds", f"writer:{PASSWORD}"] if is_berth else []
    redirect = kind in ("berth-redirect", "distribution")
    start = berth if is_berth else distribution
    with start(tmp / "registry", s3, bucket, redirect=redirect) as host:
        ref = f"docker://{host}/acme/web/bench:v1"
        push = _skopeo("--dest-tls-verify=false", *creds, f"oci:{layout}:v1", ref)
        out = tmp / "pulled"
        pull = _skopeo("--src-tls-verify=false", *src_creds, ref, f"oci:{out}:v1")
        shutil.rmtree(out)
    return push, pull


def test_push_pull_on_s3_against_distribution(tmp_path: Path) -> None:
    layers = [oci.random_layer(LAYER_SIZE, f"s3bench{i}") for i in range(LAYERS)]
    img = oci.image(layers)
    layout = oci.write_layout(tmp_path / "layout", {"v1": img})
    total = img.compressed_size
    times: dict[str, dict[str, list[float]]] = {k: {"push": [], "pull": []} for k in KINDS}
    loads: list[float] = []
    s3 = SeaweedS3()
    try:
        for n in range(ROUNDS):
            order = KINDS if n % 2 == 0 else tuple(reversed(KINDS))
            for kind in order:
                work = tmp_path / f"{kind}-{n}"
                push, pull = _round(kind, work, layout, s3)
                shutil.rmtree(work)
                times[kind]["push"].append(push)
                times[kind]["pull"].append(pull)
                loads.append(os.getloadavg()[0])
    finally:
        s3.stop()

    mb = total / 1e6
    print(f"\nimage: {LAYERS} layers, {mb:.0f} MB, blobs on SeaweedFS; median of {ROUNDS} rounds")
    rates = {}
    for kind, by_op in times.items():
        for op, samples in by_op.items():
            rates[kind, op] = mb / statistics.median(samples)
            runs = ", ".join(f"{s:.2f}s" for s in samples)
            print(f"  {kind:<20} {op}: {rates[kind, op]:7.1f} MB/s  ({runs})")
    pairs = [
        ("push", "berth", "distribution"),
        ("pull", "berth", "distribution-stream"),  # both stream through the registry
        ("pull", "berth-redirect", "distribution"),  # both redirect to the store
        ("pull", "berth", "distribution"),  # each registry's default
    ]
    for op, ours, theirs in pairs:
        ratio = rates[ours, op] / rates[theirs, op]
        print(f"  {op} {ours} / {theirs}: {ratio:.2f}x (target >= 1.0x)")
    print(f"  load average (1 min) during the rounds: {min(loads):.2f}..{max(loads):.2f}")
