"""Push and pull throughput with blobs in object storage: Berth on SeaweedFS against
CNCF Distribution 2.8 with its ``s3`` storage driver on the same SeaweedFS.

A 256 MiB image (4 layers of incompressible data) is pushed with skopeo and pulled
back ``BENCH_PULLS`` times, then the registry process is restarted and it is pulled
twice more; each round into fresh registries and fresh buckets, in the same run and
alternating who goes first. Pulls are measured both ways each
registry can serve them: streamed through the registry (Berth's default;
Distribution with ``redirect: disable``) and redirected to presigned URLs of the
store (Berth with ``--redirect-blobs``; Distribution's default).

A Berth node keeps the blobs it received whole in a push, or read whole from the
store twice, in its memory (``--blob-cache-size``, on by default). So four pulls are
reported apart: the first one after the push ("first", from the node the push went
through), the later ones ("warm"), and two after the restart: "cold" (a node
that never saw the layers reads the store; a ``skopeo inspect`` first, not timed,
spends what any fresh process spends once), and "cold again" (a node copies an
object on its second whole read: this pull reads the store once more and pays for
the copies' digest checks). ``berth-nocache`` (``--blob-cache-size 0``) streams
every pull from the store.

Berth always asks for credentials (skopeo signs in and fetches a bearer token);
Distribution is measured both without auth (as it ships) and with htpasswd auth
(bcrypt cost 5, what ``htpasswd -B`` makes), so the like-for-like ratios compare
two registries that both check who is calling.

Prints MB/s (median of the rounds, of every pull for pulls), the CPU seconds the
registry process, SeaweedFS and skopeo spent per push and per pull (read from /proc
and getrusage: on a shared machine wall time follows the load, CPU time much less;
on 2 cores skopeo's own CPU bounds a pull), the registry's
resident memory after the pulls, the ratios Berth / Distribution, and the load
average.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_s3_push_pull.py -s``
(``BENCH_ROUNDS`` sets the rounds, default 3; ``BENCH_PULLS`` the pulls per round,
default 3; ``BENCH_KINDS`` a comma-separated subset of the registries measured).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import oci
from tests.support.distribution import free_port, htpasswd_line
from tests.support.registry import PASSWORD, standard_registry
from tests.support.seaweedfs import ACCESS_KEY, REGION, SECRET_KEY, SeaweedS3
from tests.support.tools import require

LAYERS = 4
LAYER_SIZE = 64 * 1024 * 1024
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PULLS = int(os.environ.get("BENCH_PULLS", "3"))
USER = "writer"
ALL_KINDS = (
    "berth",
    "berth-nocache",
    "berth-redirect",
    "distribution",
    "distribution-stream",
    "distribution-auth",
    "distribution-stream-auth",
)
# BENCH_KINDS=berth,distribution measures those alone (the ratios between them).
KINDS = tuple(
    k for k in os.environ.get("BENCH_KINDS", ",".join(ALL_KINDS)).split(",") if k in ALL_KINDS
)
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class Running:
    """A registry process: where it listens, its pid, and how to restart it."""

    def __init__(self, start: Callable[[], tuple[str, int]]) -> None:
        self._start = start
        self.host, self.pid = start()

    def restart(self) -> None:
        self.host, self.pid = self._start()


@contextmanager
def distribution(
    root: Path, s3: SeaweedS3, bucket: str, *, redirect: bool, auth: bool
) -> Iterator[Running]:
    """docker-registry 2.8 with the s3 driver on ``bucket``, with htpasswd auth for
    ``USER`` or none."""
    binary = require("docker-registry")
    root.mkdir(parents=True)
    config = root / "config.yml"
    text = (
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
        # Its upload purger starts 0-59 minutes after start; when that is 0 on a
        # restart, walking this bucket's _uploads panics in 2.8's s3 driver
        # ("index out of range" in doWalk, seen here on SeaweedFS). Purging plays no
        # part in what is measured.
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"  redirect:\n    disable: {'false' if redirect else 'true'}\n"
    )
    if auth:
        htpasswd = root / "htpasswd"
        htpasswd.write_text(htpasswd_line(USER, PASSWORD))
        text += f"auth:\n  htpasswd:\n    realm: bench\n    path: {htpasswd}\n"
    # Its AWS SDK fails to start when AWS_CA_BUNDLE is set (even for plain HTTP).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[str, int]:
        if procs:
            procs[-1].terminate()
            procs[-1].wait(15)
        # A fresh port each start: the last one may have been taken meanwhile.
        port = free_port()
        config.write_text(text + f"http:\n  addr: 127.0.0.1:{port}\n")
        log = (root / "registry.log").open("ab")
        proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=log, env=env
        )
        log.close()
        procs.append(proc)
        deadline = time.monotonic() + 30
        while True:
            try:
                # 401: up, and asking for credentials.
                if httpx.get(f"http://127.0.0.1:{port}/v2/").status_code in (200, 401):
                    return f"127.0.0.1:{port}", proc.pid
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (root / "registry.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"docker-registry did not start:\n{tail}")
            time.sleep(0.05)

    try:
        yield Running(start)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(15)


@contextmanager
def berth(
    root: Path, s3: SeaweedS3, bucket: str, *, redirect: bool, cache: bool = True
) -> Iterator[Running]:
    args = ["--redirect-blobs"] if redirect else []
    server = standard_registry(
        root,
        blob_store=f"s3://{bucket}",
        env=s3.env,
        extra_args=args + ([] if cache else ["--blob-cache-size", "0"]),
    )

    def start() -> tuple[str, int]:
        if server.process is None:
            server.start()
        else:
            server.restart()  # on the same data and bucket: copies die with the process
        assert server.process is not None
        return server.host, server.process.proc.pid

    try:
        yield Running(start)
    finally:
        server.stop()


def skopeo_copy(*args: str) -> tuple[float, float]:
    """Wall seconds and skopeo's CPU seconds of one ``skopeo copy``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [require("skopeo"), "copy", "--quiet", *args], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0, result.stderr
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu


@dataclass
class Samples:
    """Seconds per operation: wall time, the registry's CPU, SeaweedFS's CPU."""

    wall: list[float] = field(default_factory=list)
    registry_cpu: list[float] = field(default_factory=list)
    store_cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)  # skopeo's
    rss_mb: list[float] = field(default_factory=list)  # the registry's, after the pulls


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def measured(samples: Samples, pid: int, store_pid: int, *args: str) -> None:
    # The writes of the operation before (a push's 269 MB into SeaweedFS, a pull's
    # into the layout) are flushed first: no operation pays for another's writeback.
    os.sync()
    cpu0, store0 = cpu_seconds(pid), cpu_seconds(store_pid)
    wall, client = skopeo_copy(*args)
    samples.wall.append(wall)
    samples.client_cpu.append(client)
    samples.registry_cpu.append(cpu_seconds(pid) - cpu0)
    samples.store_cpu.append(cpu_seconds(store_pid) - store0)


@dataclass
class Pulls:
    """The pulls of one kind of registry, apart."""

    first: Samples = field(default_factory=Samples)  # right after the push
    warm: Samples = field(default_factory=Samples)  # the later ones
    cold: Samples = field(default_factory=Samples)  # after a restart
    cold_again: Samples = field(default_factory=Samples)  # the second after it


def _round(kind: str, tmp: Path, layout: Path, s3: SeaweedS3, push: Samples, pulls: Pulls) -> None:
    bucket = s3.create_bucket(f"bench-{uuid.uuid4().hex[:10]}")
    signs_in = kind.startswith("berth") or kind.endswith("-auth")
    creds = ["--dest-creds", f"{USER}:{PASSWORD}"] if signs_in else []
    src_creds = ["--src-creds", f"{USER}:{PASSWORD}"] if signs_in else []
    redirect = "redirect" in kind or kind in ("distribution", "distribution-auth")
    if kind.startswith("berth"):
        cache = "nocache" not in kind
        started = berth(tmp / "registry", s3, bucket, redirect=redirect, cache=cache)
    else:
        started = distribution(
            tmp / "registry", s3, bucket, redirect=redirect, auth=kind.endswith("-auth")
        )
    with started as registry:
        store_pid = s3.proc.pid
        measured(
            push,
            registry.pid,
            store_pid,
            "--dest-tls-verify=false",
            *creds,
            f"oci:{layout}:v1",
            f"docker://{registry.host}/acme/web/bench:v1",
        )
        out = tmp / "pulled"

        def pull(samples: Samples) -> None:
            ref = f"docker://{registry.host}/acme/web/bench:v1"
            args = ("--src-tls-verify=false", *src_creds, ref, f"oci:{out}:v1")
            measured(samples, registry.pid, store_pid, *args)
            shutil.rmtree(out)

        for n in range(PULLS):
            pull(pulls.warm if n else pulls.first)
        push.rss_mb.append(rss_mb(registry.pid))
        registry.restart()
        # Not timed: a fresh process's first sign-in (Berth hashes the password
        # once per process), connections and imports; it reads the config blob,
        # not the layers.
        ref = f"docker://{registry.host}/acme/web/bench:v1"
        login = ["--creds", f"{USER}:{PASSWORD}"] if signs_in else []
        inspect = [require("skopeo"), "inspect", "--tls-verify=false", *login, ref]
        subprocess.run(inspect, capture_output=True, check=True)
        pull(pulls.cold)
        pull(pulls.cold_again)


def test_push_pull_on_s3_against_distribution(tmp_path: Path) -> None:
    layers = [oci.random_layer(LAYER_SIZE, f"s3bench{i}") for i in range(LAYERS)]
    img = oci.image(layers)
    layout = oci.write_layout(tmp_path / "layout", {"v1": img})
    total = img.compressed_size
    pushes = {k: Samples() for k in KINDS}
    pulls = {k: Pulls() for k in KINDS}
    loads: list[float] = []
    s3 = SeaweedS3()
    try:
        for n in range(ROUNDS):
            order = KINDS if n % 2 == 0 else tuple(reversed(KINDS))
            for kind in order:
                work = tmp_path / f"{kind}-{n}"
                _round(kind, work, layout, s3, pushes[kind], pulls[kind])
                shutil.rmtree(work)
                loads.append(os.getloadavg()[0])
    finally:
        s3.stop()

    mb = total / 1e6
    print(
        f"\nimage: {LAYERS} layers, {mb:.0f} MB, blobs on SeaweedFS; median of {ROUNDS} rounds"
        f" ({PULLS} pulls after the push: the first, then warm; two cold after a restart)"
    )
    print("  CPU s per operation: the registry process / SeaweedFS / skopeo")
    rates = {}
    ops = {
        "push": pushes,
        "first pull": {k: p.first for k, p in pulls.items()},
        "warm pull": {k: p.warm for k, p in pulls.items()},
        "cold pull": {k: p.cold for k, p in pulls.items()},
        "cold pull again": {k: p.cold_again for k, p in pulls.items()},
    }
    for op, by_kind in ops.items():
        for kind, s in by_kind.items():
            if not s.wall:
                continue  # no warm pulls when BENCH_PULLS=1
            rates[kind, op] = mb / statistics.median(s.wall)
            runs = ", ".join(f"{w:.2f}s" for w in s.wall)
            print(
                f"  {kind:<25} {op}: {rates[kind, op]:7.1f} MB/s  CPU"
                f" {statistics.median(s.registry_cpu):5.2f} / {statistics.median(s.store_cpu):5.2f}"
                f" / {statistics.median(s.client_cpu):5.2f}"
                f"  ({runs})"
            )
    pairs = [
        ("push", "berth", "distribution-auth"),  # both sign in
        ("push", "berth", "distribution"),
        # Both stream, both sign in: Berth with its cache, and without.
        ("first pull", "berth", "distribution-stream-auth"),
        ("warm pull", "berth", "distribution-stream-auth"),
        ("cold pull", "berth", "distribution-stream-auth"),
        ("warm pull", "berth-nocache", "distribution-stream-auth"),
        # Both redirect, both sign in.
        ("warm pull", "berth-redirect", "distribution-auth"),
        ("cold pull", "berth-redirect", "distribution-auth"),
        # Each registry's default.
        ("first pull", "berth", "distribution"),
        ("warm pull", "berth", "distribution"),
        ("cold pull", "berth", "distribution"),
        ("cold pull again", "berth", "distribution"),
        # Berth streaming from the bucket, no copies made, against Distribution's
        # default.
        ("cold pull", "berth-nocache", "distribution"),
        # Both stream, neither signs in.
        ("first pull", "berth", "distribution-stream"),
        ("cold pull", "berth", "distribution-stream"),
    ]
    # What streaming through the registry costs on this machine, where client,
    # store and registry share the cores: each registry against its own redirect.
    references = [
        ("first pull", "distribution-stream", "distribution"),
        ("cold pull", "distribution-stream", "distribution"),
        ("cold pull", "berth", "berth-redirect"),
    ]
    print("  resident memory of the registry after the pulls (median MB):")
    for kind, s in pushes.items():
        print(f"    {kind:<25} {statistics.median(s.rss_mb):6.0f}")
    for op, ours, theirs in pairs:
        if (ours, op) not in rates or (theirs, op) not in rates:
            continue  # not measured (BENCH_KINDS)
        ratio = rates[ours, op] / rates[theirs, op]
        print(f"  {op} {ours} / {theirs}: {ratio:.2f}x (target >= 1.0x)")
    for op, ours, theirs in references:
        if (ours, op) in rates and (theirs, op) in rates:
            ratio = rates[ours, op] / rates[theirs, op]
            print(f"  {op} {ours} / {theirs}: {ratio:.2f}x (streaming / redirecting)")
    print(f"  load average (1 min) during the rounds: {min(loads):.2f}..{max(loads):.2f}")
