"""Trash stress (issue 13): restores racing the GC, expiry, pushes of the same tags,
image deletes, empties and second restores of the same entries, all at once from
several threads, on SQLite and on PostgreSQL.

The trash keeps entries for 3 s, so they expire all along; the GC reviews with no
delay (the server's worker, plus "run now" calls). Every restore answers a result
the race allows (restored; or not_found: restored, emptied or expired meanwhile; or
conflict: the name was pushed again); nothing answers a 5xx. Pulls of the image no
one deletes never miss a blob within the upload grace. Afterwards, once every entry
has expired and the queues have drained: every tag pulls whole, nothing
unreferenced is left, and fsck (with content verification) is clean.

Runs for ``BERTH_STRESS_SECONDS`` (default 45) per database.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.test_race_stress import Tally
from tests.e2e.test_race_stress import Worker as RaceWorker
from tests.support import oci
from tests.support.api import api
from tests.support.gc_checks import Metadata, all_objects, http_pull, wait_until
from tests.support.postgres import PostgresServer
from tests.support.registry import CLI, RegistryServer, standard_registry

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DURATION = float(os.environ.get("BERTH_STRESS_SECONDS", "45"))
GRACE = 4.0
RETENTION = 3.0
STEADY = "acme/web/steady"  # never image-deleted: its pulls must never miss a blob
OTHERS = [f"acme/web/img{i}" for i in range(2)]  # also deleted and restored whole
TAGS = ["t0", "t1", "t2"]
SHARED = [oci.random_layer(2_000 + 1_000 * i, f"trash-stress-{i}") for i in range(6)]
RESTORE_OK = {"restored", "not_found", "conflict"}


class Worker(RaceWorker):
    """The race stress's worker (its client, tally and retrying ``call``), with the
    trash's operations."""

    def push(self) -> None:
        name = self.rng.choice([STEADY, *OTHERS])
        self.made += 1
        layers = self.rng.sample(SHARED, self.rng.randint(1, 2))
        layers.append(oci.random_layer(self.rng.randint(500, 3_000), f"{self.seed}-{self.made}"))
        img = oci.image(layers, label=f"{self.seed}-{self.made}")
        for blob in img.blobs:
            if self.call("HEAD", f"/v2/{name}/blobs/{blob.digest}").status_code == 200:
                continue
            r = self.call(
                "POST",
                f"/v2/{name}/blobs/uploads/",
                params={"digest": blob.digest},
                content=blob.data,
                headers={"Content-Type": "application/octet-stream"},
            )
            if r.status_code != 201:
                self.tally.add("push lost to an image delete")
                return
        r = self.call(
            "PUT",
            f"/v2/{name}/manifests/{self.rng.choice(TAGS)}",
            content=img.manifest.data,
            headers={"Content-Type": img.manifest.media_type},
        )
        if r.status_code == 201:
            self.tally.add("push (moves a tag into the trash)")
        elif r.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in r.text and name != STEADY:
            self.tally.add("push lost to an image delete")
        else:
            self.tally.violation(f"push {name}: {r.status_code} {r.text[:300]}")

    def delete_tag(self) -> None:
        name = self.rng.choice([STEADY, *OTHERS])
        r = self.call("DELETE", f"/v2/{name}/manifests/{self.rng.choice(TAGS)}")
        self.tally.add("tag delete" if r.status_code == 202 else "tag delete (already gone)")

    def delete_image(self) -> None:
        name = self.rng.choice(OTHERS)
        items = self.call(
            "GET", "/workspaces/acme/images", client=self.api, params={"q": name.split("/")[-1]}
        ).json()["items"]
        for item in items:
            if item["full_name"] == name:
                r = self.call(
                    "DELETE",
                    f"/images/{item['id']}",
                    client=self.api,
                    headers={"If-Match": item["etag"]},
                )
                if r.status_code == 204:
                    self.tally.add("image delete")

    def entries(self) -> list[dict[str, object]]:
        r = self.call("GET", "/workspaces/acme/trash", client=self.api, params={"limit": 50})
        return list(r.json()["items"]) if r.status_code == 200 else []

    def restore(self) -> None:
        found = self.entries()
        if not found:
            return
        # Often the same entry twice in one call, or the newest (which other workers
        # pick too): second restores meet the first.
        picked = self.rng.sample(found, min(len(found), self.rng.randint(1, 3)))
        if self.rng.random() < 0.3:
            picked.append(picked[0])
        items = []
        for x in picked:
            item: dict[str, object] = {"id": x["id"]}
            if x["kind"] == "tag" and self.rng.random() < 0.2:
                item["as"] = f"as-{self.rng.randint(0, 3)}"
            items.append(item)
        r = self.call(
            "POST", "/workspaces/acme/trash/restore", client=self.api, json={"entries": items}
        )
        if r.status_code != 200:
            self.tally.violation(f"restore: {r.status_code} {r.text[:300]}")
            return
        for result in r.json()["results"]:
            if result["status"] not in RESTORE_OK:
                self.tally.violation(f"restore answered {result}")
            self.tally.add(f"restore: {result['status']}")

    def empty(self) -> None:
        found = self.entries()
        if found:
            ids = [x["id"] for x in self.rng.sample(found, min(len(found), 2))]
            r = self.call(
                "POST", "/workspaces/acme/trash/empty", client=self.api, json={"entries": ids}
            )
            if r.status_code != 200:
                self.tally.violation(f"empty: {r.status_code} {r.text[:300]}")
            else:
                self.tally.add("empty", r.json()["emptied"])

    def pull(self) -> None:
        name = self.rng.choice([STEADY, *OTHERS])
        started = time.time()
        try:
            http_pull(self.client, name, self.rng.choice(TAGS))
            self.tally.add("pull")
        except AssertionError as exc:
            took = time.time() - started
            if str(exc).startswith("manifest "):
                self.tally.add("pull of a missing tag")
            elif name != STEADY:
                self.tally.add("pull lost to an image delete")
            elif took >= GRACE:
                self.tally.add("pull that outlived the grace")
            else:
                self.tally.violation(f"pull of {name} lost a blob ({took:.2f} s): {exc}")

    def run_now(self) -> None:
        r = self.call("POST", "/workspaces/acme/gc/run", client=self.api)
        if r.status_code == 200:
            self.tally.add("gc run now")
        else:
            self.tally.violation(f"run now: {r.status_code} {r.text[:200]}")


def _loop(worker: Worker, until: float, ops: list[tuple[Callable[[], None], float]]) -> None:
    actions, weights = zip(*ops, strict=True)
    try:
        while time.monotonic() < until:
            worker.rng.choices(actions, weights)[0]()
    except Exception as exc:  # a transport error, a broken answer
        worker.tally.violation(f"worker crashed: {exc!r}")
    finally:
        worker.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryServer]:
    pg = PostgresServer() if request.param == "postgresql" else None
    url = pg.create_database("trash") if pg is not None else None
    srv = standard_registry(
        tmp_path / "data",
        database_url=url,
        review_delay=0,
        upload_grace=GRACE,
        trash_retention=RETENTION,
        log_file=tmp_path / "server.log",
    ).start()
    try:
        yield srv
    finally:
        srv.stop()
        if pg is not None:
            pg.stop()


def test_trash_stress(server: RegistryServer) -> None:
    tally = Tally()
    until = time.monotonic() + DURATION
    threads = []
    for i in range(4):
        w = Worker(server, tally, seed=i)
        ops = [
            (w.push, 30),
            (w.delete_tag, 20),
            (w.restore, 25),
            (w.pull, 20),
            (w.empty, 4),
            (w.delete_image, 3),
            (w.run_now, 2),
        ]
        threads.append(threading.Thread(target=_loop, args=(w, until, ops)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    with Metadata(server.data, server.database_url) as meta:
        # Every entry expires within the retention; then what it held is collected.
        with api(server, "root") as c:
            wait_until(
                lambda: c.get("/workspaces/acme/trash").json()["total"] == 0,
                "the trash to expire",
                timeout=120,
            )
        wait_until(lambda: meta.queued() == 0, "the review queues to drain", timeout=180)
        totals = meta.totals()
        assert (totals.pending, totals.in_trash) == (0, 0)
        assert totals.stored == totals.referenced
        stored_on_disk = len(all_objects(server.data))
        assert stored_on_disk == meta.blob_rows() == totals.blob_count
    pulled = 0
    with server.client("root") as c:
        for name in [STEADY, *OTHERS]:
            r = c.get(f"/v2/{name}/tags/list")
            for tag in (r.json().get("tags") or []) if r.status_code == 200 else []:
                http_pull(c, name, tag)
                pulled += 1
    server.stop()
    fsck = subprocess.run(
        [
            CLI, "fsck", "--data", str(server.data), "--verify-content", "--orphan-min-age", "0",
            *(["--database-url", server.database_url] if server.database_url else []),
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    counts = dict(sorted(tally.counts.items()))
    print(f"\ntrash stress, {DURATION:.0f} s: {counts}")
    print(f"tags pulled whole afterwards: {pulled}; blobs left: {totals.blob_count}")
    print(fsck.stdout.strip().splitlines()[-1] if fsck.stdout.strip() else fsck.stderr)
    assert server.log_file is not None
    log = server.log_file.read_text()
    assert tally.violations == [], log[log.find("Traceback") :][:4000]
    assert "Traceback" not in log, log[log.find("Traceback") :][:4000]
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert counts.get("restore: restored", 0) > 0
    assert counts.get("restore: not_found", 0) > 0  # restores met each other or expiry
    assert counts.get("push (moves a tag into the trash)", 0) > 0
