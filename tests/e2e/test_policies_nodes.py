"""Two ``serve`` processes on one PostgreSQL: a scheduled cleanup policy runs once per
slot across both (never twice, never two at once), and pull times noted by either
node reach the shared database."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.registry.api.times import parse_iso
from tests.support import oci
from tests.support.api import api
from tests.support.postgres import PostgresServer
from tests.support.registry import RegistryServer, standard_registry

pytestmark = pytest.mark.e2e

FAST = ["--pull-flush-interval", "0.2", "--policy-check-interval", "0.05"]


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[RegistryServer, RegistryServer]]:
    pg = PostgresServer()
    started: list[RegistryServer] = []
    try:
        url = pg.create_database("berth")
        # One data directory (the blob store) and one database for both nodes.
        first = standard_registry(tmp_path / "data", database_url=url, extra_args=FAST)
        started.append(first.start())
        second = RegistryServer(tmp_path / "data", database_url=url, extra_args=FAST)
        started.append(second.start())
        yield first, second
    finally:
        for server in started:
            server.stop()
        pg.stop()


def _runs(server: RegistryServer) -> list[dict[str, Any]]:
    with api(server) as c:
        return list(c.get("/workspaces/acme/policy-runs", params={"limit": 1000}).json()["items"])


def test_a_schedule_runs_once_per_slot_across_two_nodes(
    nodes: tuple[RegistryServer, RegistryServer],
) -> None:
    first, second = nodes
    img = oci.image([oci.random_layer(1000, "sched")])
    with first.client("root") as c:
        for n in range(30):
            oci.push(c, "acme/web/app", img, f"t{n}")
    interval = 1
    with api(first) as c:
        # Keeps every tag: each run plans 30 tags and deletes none, so runs are quick
        # and many slots pass while both nodes look for due policies 20 times a second.
        r = c.put(
            "/workspaces/acme/policy",
            json={"rules": [{"kind": "keep_last", "value": 100}], "interval": interval},
        )
        assert r.status_code == 200, r.text
        first_slot = parse_iso(r.json()["next_run_at"])
    slots = 8
    deadline = first_slot + slots * interval * 1000 - 500
    while time.time() * 1000 < deadline:
        time.sleep(0.1)
    with api(first) as c:  # the schedule stops: no slot falls due after this
        keep = [{"kind": "keep_last", "value": 100}]
        assert c.put("/workspaces/acme/policy", json={"rules": keep}).status_code == 200
    stopped = time.time() * 1000
    end = time.monotonic() + 30
    while any(run["state"] == "running" for run in _runs(first)):
        assert time.monotonic() < end
        time.sleep(0.05)
    runs = sorted(_runs(second), key=lambda run: parse_iso(run["started_at"]))
    assert all(run["trigger"] == "schedule" for run in runs)
    assert all(run["state"] == "done" for run in runs), runs
    # Slots fall due at first_slot + k s. Run k starts no earlier than slot k: a second
    # node claiming a slot already claimed would start a run before its slot. (A node
    # late for several slots claims them as one run, so there may be fewer runs.)
    due = int((stopped - first_slot) // (interval * 1000)) + 1
    assert slots // 2 <= len(runs) <= due, [(r["started_at"], r["node"]) for r in runs]
    for k, run in enumerate(runs):
        assert parse_iso(run["started_at"]) >= first_slot + k * interval * 1000
    # Never two at once.
    for before, after in itertools.pairwise(runs):
        assert parse_iso(before["finished_at"]) <= parse_iso(after["started_at"])
    print(
        "runs by node:", {n: sum(r["node"] == n for r in runs) for n in {r["node"] for r in runs}}
    )


def test_pull_times_from_both_nodes_reach_the_database(
    nodes: tuple[RegistryServer, RegistryServer],
) -> None:
    first, second = nodes
    img = oci.image([oci.random_layer(1000, "pulls")])
    with first.client("root") as c:
        oci.push(c, "acme/web/app", img, "a")
        oci.push(c, "acme/web/app", img, "b")
    with second.client("root") as c:
        assert c.get("/v2/acme/web/app/manifests/b").status_code == 200
    time.sleep(0.01)
    with first.client("root") as c:
        assert c.get("/v2/acme/web/app/manifests/a").status_code == 200
    with api(first) as c:
        image = c.get("/workspaces/acme/images", params={"q": "app"}).json()["items"][0]["id"]
        end = time.monotonic() + 30
        while True:
            rows = {t["name"]: t for t in c.get(f"/images/{image}/tags").json()["items"]}
            if rows["a"]["last_pulled"] and rows["b"]["last_pulled"]:
                break
            assert time.monotonic() < end
            time.sleep(0.05)
    # b was pulled through the second node, a later through the first: the shared
    # manifest keeps the later time whichever node flushed last.
    assert parse_iso(rows["a"]["last_pulled"]) >= parse_iso(rows["b"]["last_pulled"])
    assert rows["a"]["digest_last_pulled"] == rows["b"]["digest_last_pulled"]
    assert rows["a"]["digest_last_pulled"] == rows["a"]["last_pulled"]
