"""What streaming blobs through the registry costs a cold pull, against redirecting
the client to the object store, for Berth and for CNCF Distribution 2.8 alike.

``bench_s3_push_pull`` runs one registry at a time, each round on a fresh bucket,
so its cold-pull ratios carry the noise of a whole round. Here four registries run
at once on one SeaweedFS, each on a bucket of its own holding the same 256 MiB image
(4 layers), and their cold pulls take turns, the order turning every round:

- ``berth``: Berth as it ships, streaming from the bucket (its cache empty after
  the restart);
- ``berth-redirect``: Berth with ``--redirect-blobs``;
- ``distribution-stream``: Distribution with ``redirect: disable``;
- ``distribution``: Distribution as it ships, redirecting to presigned URLs.

Distribution runs without auth, as it ships; Berth always asks for credentials.
A cold pull is the first one on a restarted process, after an untimed ``skopeo
inspect`` (a fresh process's sign-in, connections and imports).

On this machine skopeo, SeaweedFS and the registry share the cores, so every byte a
registry copies (from the store's socket to the client's) is CPU that the client
and the store do not get, and shows as wall time; a redirect copies none. The
ratio ``distribution-stream / distribution`` measures that price for a registry
written in Go, and ``berth / berth-redirect`` for Berth.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_s3_streaming_cost.py -s``
(``BENCH_ROUNDS`` sets the rounds, default 8).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
from contextlib import ExitStack
from pathlib import Path

from tests.benchmarks.bench_s3_push_pull import (
    LAYER_SIZE,
    LAYERS,
    USER,
    Running,
    Samples,
    berth,
    distribution,
    measured,
    skopeo_copy,
)
from tests.support import oci
from tests.support.registry import PASSWORD
from tests.support.seaweedfs import SeaweedS3
from tests.support.tools import require

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "8"))
KINDS = ("berth", "berth-redirect", "distribution-stream", "distribution")
PAIRS = [
    ("berth", "distribution"),  # each registry's default: the target
    ("berth", "distribution-stream"),  # both stream
    ("berth-redirect", "distribution"),  # both redirect
    ("distribution-stream", "distribution"),  # what streaming costs Distribution
    ("berth", "berth-redirect"),  # what streaming costs Berth
]


def _creds(kind: str) -> list[str]:
    return [f"{USER}:{PASSWORD}"] if kind.startswith("berth") else []


def _cold_pull(kind: str, registry: Running, s3: SeaweedS3, out: Path, samples: Samples) -> None:
    registry.restart()
    ref = f"docker://{registry.host}/acme/web/bench:v1"
    login = [f"--creds={c}" for c in _creds(kind)]
    inspect = [require("skopeo"), "inspect", "--tls-verify=false", *login, ref]
    subprocess.run(inspect, capture_output=True, check=True)
    creds = [f"--src-creds={c}" for c in _creds(kind)]
    measured(
        samples, registry.pid, s3.proc.pid, "--src-tls-verify=false", *creds, ref, f"oci:{out}:v1"
    )
    shutil.rmtree(out)


def test_cold_pull_streaming_against_redirecting(tmp_path: Path) -> None:
    layers = [oci.random_layer(LAYER_SIZE, f"s3bench{i}") for i in range(LAYERS)]
    img = oci.image(layers)
    layout = oci.write_layout(tmp_path / "layout", {"v1": img})
    samples = {kind: Samples() for kind in KINDS}
    loads: list[float] = []
    s3 = SeaweedS3()
    try:
        with ExitStack() as stack:
            registries: dict[str, Running] = {}
            for kind in KINDS:
                bucket = s3.create_bucket(f"cost-{kind}")
                root = tmp_path / kind
                redirect = kind in ("berth-redirect", "distribution")
                if kind.startswith("berth"):
                    started = berth(root, s3, bucket, redirect=redirect)
                else:
                    started = distribution(root, s3, bucket, redirect=redirect, auth=False)
                registries[kind] = stack.enter_context(started)
                dest = [f"--dest-creds={c}" for c in _creds(kind)]
                ref = f"docker://{registries[kind].host}/acme/web/bench:v1"
                skopeo_copy("--dest-tls-verify=false", *dest, f"oci:{layout}:v1", ref)
            for n in range(ROUNDS):
                order = KINDS[n % len(KINDS) :] + KINDS[: n % len(KINDS)]
                for kind in order:
                    _cold_pull(kind, registries[kind], s3, tmp_path / "pulled", samples[kind])
                loads.append(os.getloadavg()[0])
    finally:
        s3.stop()

    mb = img.compressed_size / 1e6
    print(f"\ncold pulls of {mb:.0f} MB ({LAYERS} layers) on SeaweedFS, median of {ROUNDS}")
    print("  CPU s per pull: the registry process / SeaweedFS / skopeo")
    rates = {}
    for kind, s in samples.items():
        rates[kind] = mb / statistics.median(s.wall)
        print(
            f"  {kind:<20} {rates[kind]:6.1f} MB/s  CPU {statistics.median(s.registry_cpu):5.2f}"
            f" / {statistics.median(s.store_cpu):5.2f} / {statistics.median(s.client_cpu):5.2f}"
            f"  ({', '.join(f'{w:.2f}s' for w in s.wall)})"
        )
    for ours, theirs in PAIRS:
        print(f"  cold pull {ours} / {theirs}: {rates[ours] / rates[theirs]:.2f}x")
    print(f"  load average (1 min) during the rounds: {min(loads):.2f}..{max(loads):.2f}")
