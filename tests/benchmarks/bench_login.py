"""What a flood of wrong passwords costs the server: 15 clients sending wrong Basic
passwords for 10 s, each request from its own address (X-Forwarded-For, trusted
from this host) at a name of its own, so neither back-off key ever stops them: the
worst case for memory, every attempt that gets through is a full argon2id check
(64 MiB). Prints the server's peak resident memory (VmHWM) before and after, how
many attempts it checked (401), refused unchecked (429) or turned away busy (503),
and the load average.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_login.py -s``
(``BENCH_LOGIN_CLIENTS``, default 15; ``BENCH_LOGIN_SECONDS``, default 10).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.support.registry import PASSWORD, standard_registry


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_bad_login_flood_memory(tmp_path: Path) -> None:
    clients = int(os.environ.get("BENCH_LOGIN_CLIENTS", "15"))
    seconds = float(os.environ.get("BENCH_LOGIN_SECONDS", "10"))
    server = standard_registry(tmp_path / "data").start()
    try:
        assert server.process is not None
        pid = server.process.proc.pid
        with server.client("reader") as c:  # one good login: the steady state
            assert c.get("/v2/").status_code == 200
        before = _peak_rss_mib(pid)
        counter = itertools.count()
        statuses: Counter[int] = Counter()
        lock = threading.Lock()
        stop = time.monotonic() + seconds

        def flood() -> None:
            with httpx.Client(base_url=server.url, timeout=120) as c:
                while time.monotonic() < stop:
                    n = next(counter)
                    address = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
                    r = c.get(
                        "/v2/",
                        auth=(f"guess{n}", "wrong-" + PASSWORD),
                        headers={"X-Forwarded-For": address},
                    )
                    with lock:
                        statuses[r.status_code] += 1

        threads = [threading.Thread(target=flood) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = _peak_rss_mib(pid)
        with server.client("reader") as c:
            assert c.get("/v2/").status_code == 200
    finally:
        server.stop()
    print(
        f"\nbad-login flood: {clients} clients, {seconds:.0f} s: peak RSS {before:.0f} MiB -> "
        f"{after:.0f} MiB; answers {dict(sorted(statuses.items()))}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
