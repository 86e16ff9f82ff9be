"""Race stress: pushes of images sharing layers, tag overwrites, tag and image
deletes, pulls, and GC (the server's worker with a review delay of 0, plus a second
GC process and "run now" calls), all at once from several threads.

Slow pushes check their layers with HEAD, pause for most of the upload grace, then
push their manifest: they must never fail. Pulls of images nobody deletes must
never miss a blob. Afterwards every tag pulls completely with verified digests,
fsck is clean, and every unreferenced blob has been collected.

Runs for ``BERTH_STRESS_SECONDS`` (default 60).
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import oci
from tests.support.api import api
from tests.support.gc_checks import Metadata, all_objects, http_pull, skopeo_pull, wait_until
from tests.support.registry import CLI, RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DURATION = float(os.environ.get("BERTH_STRESS_SECONDS", "60"))
GRACE = 4.0
SLOW_PAUSE = (0.3, GRACE - 1.5)  # from the first HEAD to the manifest PUT
FAST_IMAGES = [f"acme/web/img{i}" for i in range(4)]  # pushed, tag- and image-deleted
SLOW_IMAGES = [f"acme/api/slow{i}" for i in range(2)]  # never image-deleted
TAGS = [f"t{i}" for i in range(5)]
SHARED = [oci.random_layer(2_000 + 1_500 * i, f"stress-shared-{i}") for i in range(10)]


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    images: dict[str, oci.Image] = field(default_factory=dict)  # pushed, by digest

    def pushed(self, img: oci.Image) -> None:
        with self.lock:
            self.images[img.digest] = img

    def add(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def violation(self, what: str) -> None:
        with self.lock:
            self.violations.append(what)


class Worker:
    def __init__(self, server: RegistryServer, tally: Tally, seed: int) -> None:
        self.client = server.client("root")
        self.api = api(server, "root")
        self.tally = tally
        self.rng = random.Random(seed)
        self.seed = seed
        self.made = 0

    def close(self) -> None:
        self.client.close()
        self.api.close()

    def call(
        self, method: str, url: str, *, client: httpx.Client | None = None, **kw: object
    ) -> httpx.Response:
        """One request; a 503 (the registry is busy) is retried, a 5xx is a violation."""
        for _ in range(50):
            r = (client or self.client).request(method, url, **kw)  # type: ignore[arg-type]
            if r.status_code == 503:
                self.tally.add("busy (503, retried)")
                time.sleep(0.05)
                continue
            if r.status_code >= 500:
                self.tally.violation(f"{method} {url}: {r.status_code} {r.text[:200]}")
            return r
        self.tally.violation(f"{method} {url}: busy for too long")
        return r

    def new_image(self) -> oci.Image:
        self.made += 1
        layers = self.rng.sample(SHARED, self.rng.randint(1, 3))
        if self.rng.random() < 0.6:
            layers.append(
                oci.random_layer(self.rng.randint(500, 6_000), f"{self.seed}-{self.made}")
            )
        return oci.image(layers, label=f"{self.seed}-{self.made}")

    def upload_missing(self, name: str, blobs: list[oci.Blob]) -> None:
        for blob in blobs:
            if self.call("HEAD", f"/v2/{name}/blobs/{blob.digest}").status_code == 200:
                self.tally.add("layer checked with HEAD")
                continue
            r = self.call(
                "POST",
                f"/v2/{name}/blobs/uploads/",
                params={"digest": blob.digest},
                content=blob.data,
                headers={"Content-Type": "application/octet-stream"},
            )
            if r.status_code != 201:
                raise AssertionError(f"upload to {name}: {r.status_code} {r.text[:200]}")
            self.tally.add("blob uploaded")

    def put_manifest(self, name: str, tag: str, img: oci.Image) -> httpx.Response:
        return self.call(
            "PUT",
            f"/v2/{name}/manifests/{tag}",
            content=img.manifest.data,
            headers={"Content-Type": img.manifest.media_type},
        )

    # operations ---------------------------------------------------------------
    def push(self) -> None:
        name, tag, img = self.rng.choice(FAST_IMAGES), self.rng.choice(TAGS), self.new_image()
        try:
            self.upload_missing(name, img.blobs)
        except AssertionError:
            self.tally.add("push lost to an image delete")  # links go with the image
            return
        r = self.put_manifest(name, tag, img)
        if r.status_code == 201:
            self.tally.add("push")
            self.tally.pushed(img)
        elif r.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in r.text:
            self.tally.add("push lost to an image delete")
        else:
            self.tally.violation(f"push {name}:{tag}: {r.status_code} {r.text[:200]}")

    def slow_push(self) -> None:
        name, tag, img = self.rng.choice(SLOW_IMAGES), self.rng.choice(TAGS), self.new_image()
        started = time.time()  # every blob is touched (HEAD or upload) after this
        self.upload_missing(name, img.blobs)
        pause = self.rng.uniform(*SLOW_PAUSE) - (time.time() - started)
        time.sleep(max(0.0, pause))
        r = self.put_manifest(name, tag, img)
        took = time.time() - started
        if r.status_code == 201:
            self.tally.add("slow push (HEAD, pause, manifest)")
            self.tally.pushed(img)
        elif took >= GRACE:
            # Under load the push outlived the grace (the server's commit came after
            # it ended): the GC may take the layers then, by design.
            self.tally.add("slow push that outlived the grace")
        else:
            # Touched after `started`, referenced before `started + took`: within the
            # grace, so no review could have deleted any of its blobs.
            self.tally.violation(
                f"slow push {name}:{tag} within the grace ({took:.2f} s): "
                f"{r.status_code} {r.text[:300]}"
            )

    def delete_tag(self) -> None:
        name = self.rng.choice(FAST_IMAGES + SLOW_IMAGES)
        r = self.call("DELETE", f"/v2/{name}/manifests/{self.rng.choice(TAGS)}")
        self.tally.add("tag delete" if r.status_code == 202 else "tag delete (already gone)")

    def delete_image(self) -> None:
        name = self.rng.choice(FAST_IMAGES)
        if self.rng.random() < 0.5:
            found = self.call(
                "GET", "/workspaces/acme/images", client=self.api, params={"q": name.split("/")[-1]}
            ).json()["items"]
            for item in found:
                if item["full_name"] == name:
                    r = self.call(
                        "DELETE",
                        f"/images/{item['id']}",
                        client=self.api,
                        headers={"If-Match": item["etag"]},
                    )
                    if r.status_code == 204:
                        self.tally.add("image delete (management API)")
            return
        r = self.call("GET", f"/v2/{name}/tags/list")
        tags = r.json().get("tags") or [] if r.status_code == 200 else []
        for tag in tags:
            head = self.call("HEAD", f"/v2/{name}/manifests/{tag}")
            digest = head.headers.get("docker-content-digest")
            if digest:
                self.call("DELETE", f"/v2/{name}/manifests/{digest}")
        self.tally.add("image delete (OCI API, every manifest by digest)")

    def pull(self) -> None:
        name = self.rng.choice(FAST_IMAGES + SLOW_IMAGES)
        started = time.time()
        try:
            http_pull(self.client, name, self.rng.choice(TAGS))
            self.tally.add("pull")
        except AssertionError as exc:
            took = time.time() - started
            if str(exc).startswith("manifest "):
                self.tally.add("pull of a missing tag")
            elif name in FAST_IMAGES:
                self.tally.add("pull lost to an image delete")  # links go with the image
            elif took >= GRACE:
                self.tally.add("pull that outlived the grace")
            else:
                # Its manifest came back (and was touched): nothing it references may
                # go within the grace.
                self.tally.violation(f"pull of {name} lost a blob ({took:.2f} s): {exc}")

    def run_now(self) -> None:
        r = self.call("POST", "/workspaces/acme/gc/run", client=self.api)
        if r.status_code == 200:
            self.tally.add("gc run now (management API)")
        else:
            self.tally.violation(f"run now: {r.status_code} {r.text[:200]}")


def _loop(worker: Worker, until: float, ops: list[tuple[Callable[[], None], float]]) -> None:
    actions, weights = zip(*ops, strict=True)
    try:
        while time.monotonic() < until:
            worker.rng.choices(actions, weights)[0]()
    except Exception as exc:  # a failed assertion in a helper, or a transport error
        worker.tally.violation(f"worker crashed: {exc!r}")
    finally:
        worker.close()


def _gc_process(server: RegistryServer, until: float, tally: Tally) -> None:
    """A second GC (another node, or an admin's cron job) contending for the locks."""
    while time.monotonic() < until:
        result = subprocess.run(
            [
                CLI,
                "gc",
                "--data",
                str(server.data),
                "--once",
                "--ignore-review-delay",
                "--gc-upload-grace",
                str(GRACE),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 1):
            tally.violation(f"gc --once: {result.returncode} {result.stderr[-500:]}")
        tally.add("gc --once (second process)")
        time.sleep(2)


def test_race_stress(registry_factory: Callable[..., RegistryServer], tmp_path: Path) -> None:
    server = registry_factory(review_delay=0, upload_grace=GRACE)
    tally = Tally()
    until = time.monotonic() + DURATION
    threads: list[threading.Thread] = []
    for i in range(4):
        w = Worker(server, tally, seed=i)
        ops = [(w.push, 40), (w.pull, 30), (w.delete_tag, 20), (w.delete_image, 4), (w.run_now, 2)]
        threads.append(threading.Thread(target=_loop, args=(w, until, ops)))
    for i in range(2):
        w = Worker(server, tally, seed=100 + i)
        threads.append(threading.Thread(target=_loop, args=(w, until, [(w.slow_push, 1)])))
    threads.append(threading.Thread(target=_gc_process, args=(server, until, tally)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    with Metadata(server.data) as meta:
        # Everything unreferenced is collected once the last grace has passed.
        wait_until(lambda: meta.queued() == 0, "the review queues to drain", timeout=180)
        totals = meta.totals()
        assert totals.pending == 0
        assert totals.stored == totals.referenced
        assert len(all_objects(server.data)) == meta.blob_rows() == totals.blob_count
        runs = meta.last_run_id()

    existing: list[tuple[str, str, str]] = []
    with server.client("root") as c:
        for name in FAST_IMAGES + SLOW_IMAGES:
            r = c.get(f"/v2/{name}/tags/list")
            for tag in (r.json().get("tags") or []) if r.status_code == 200 else []:
                existing.append((name, tag, http_pull(c, name, tag)))
    assert existing
    # skopeo verifies digests its own way, and compares against what was pushed.
    for name, tag, digest in random.Random(0).sample(existing, min(3, len(existing))):
        skopeo_pull(server.host, name, tag, tally.images[digest], tmp_path / name / tag)

    fsck = subprocess.run(
        [CLI, "fsck", "--data", str(server.data), "--verify-content", "--orphan-min-age", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    counts = dict(sorted(tally.counts.items()))
    print(f"\nrace stress, {DURATION:.0f} s: {counts}")
    print(f"GC runs recorded: {runs}; tags pulled and verified afterwards: {len(existing)}")
    print(f"blobs left: {totals.blob_count} ({totals.stored} bytes, all referenced)")
    print(fsck.stdout.strip().splitlines()[-1])
    assert tally.violations == []
    assert fsck.returncode == 0, fsck.stdout
    assert counts.get("slow push (HEAD, pause, manifest)", 0) > 0
    assert counts.get("tag delete", 0) > 0
