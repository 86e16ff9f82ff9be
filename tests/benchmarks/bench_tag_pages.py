"""Every tag of one image through the management API in pages of 1,000 (rich rows:
digest, size, platforms, created, other tags) -- the listing part of
``bench_flat_cost.py`` on its own, so it can be measured again and again without
filling Distribution too. Issue 12's target: 100,000 tags in at most 2 s.

The image is filled as ``bench_flat_cost.py`` fills it, through ``/v2/`` only, at
``BENCH_CONNECTIONS`` connections: ``BENCH_FILL`` tags (default 100,000), each its
own small manifest over one shared config and layer. Then ``BENCH_ROUNDS`` (default
5) walks of every page, each timed by the client, with the server process's CPU
seconds; medians, with the load average. ``tags/list`` (names only) is walked the
same way as the peer figure of the same run.

``BENCH_DATA=DIR`` keeps the registry's data: the first run fills DIR and marks it;
later runs measure the kept image again without filling.

Run on demand: ``.venv/bin/pytest tests/benchmarks/bench_tag_pages.py -s``.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import pytest
from sqlalchemy import Connection

from app.registry import accounts
from tests.benchmarks.bench_flat_cost import (
    CONNECTIONS,
    FILL,
    Registry,
    cpu_seconds,
    fill,
    list_tags_api,
    list_tags_v2,
    load,
    push_blobs,
)
from tests.support.registry import PASSWORD, RegistryServer

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
KEPT = os.environ.get("BENCH_DATA")


def _seed(c: Connection) -> None:  # accounts only: nothing measured is seeded
    accounts.add_workspace(c, "bench")
    accounts.add_project(c, "bench", "PLAT")
    accounts.add_repository(c, "bench", "big", "PLAT")
    accounts.add_user(c, "bench", PASSWORD, superuser=True)


@pytest.mark.timeout(3 * 3600)
def test_tag_pages(tmp_path: Path) -> None:
    data = Path(KEPT) if KEPT else tmp_path / "berth"
    marker = data / f"bench-tag-pages-filled-{FILL}"
    server = RegistryServer(data)
    if not marker.exists():
        if data.exists() and any(data.iterdir()):
            pytest.fail(f"{data} holds something else than this benchmark's fill")
        server.seed(_seed)
    server.start()
    try:
        assert server.process is not None
        reg = Registry("Berth", server.url, ("bench", PASSWORD), by_digest=False)
        reg.pid = server.process.proc.pid
        if not marker.exists():
            push_blobs(reg)
            decade = fill(reg, 0, FILL)
            print(f"\nfilled {FILL:,} tags at {CONNECTIONS} connections in {decade.seconds:.0f} s")
            marker.touch()
        print(f"\nevery tag of {FILL:,}, pages of 1000 ({load()})")
        for label, walk in (("API, rich rows", list_tags_api), ("tags/list", list_tags_v2)):
            walls, cpus = [], []
            for _ in range(ROUNDS):
                cpu = cpu_seconds(reg.pid)
                took, count = walk(reg)
                cpus.append(cpu_seconds(reg.pid) - cpu)
                walls.append(took)
                assert count == FILL, count
            print(
                f"  {label:<15} median {statistics.median(walls):6.3f} s wall, "
                f"server CPU {statistics.median(cpus):5.2f} s; "
                f"walls {', '.join(f'{w:.2f}' for w in walls)} ({load()})"
            )
    finally:
        server.stop()
