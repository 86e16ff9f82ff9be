"""Storage figures, shared layers, delete impact, GC status and history through the
management API, checked against sums this test computes from the blobs it pushed
(a blob shared by several images counted once), and against what GC then frees."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.core.storage import delete_impact
from tests.support import oci
from tests.support.api import Content, api, as_listed, push_content
from tests.support.registry import RegistryServer, standard_registry

Tag = tuple[str, str]  # (image full name, tag)


def sbom_for(subject: oci.Image) -> oci.Image:
    return oci.image(
        [oci.Blob(b'{"spdxVersion": "SPDX-2.3"}', "application/spdx+json")],
        subject=subject.manifest,
        artifact_type="application/spdx+json",
        config_blob=oci.Blob(b"{}", "application/vnd.oci.empty.v1+json"),
    )


class Model:
    """What the workspace holds, from the test's side: tags -> reachable blobs."""

    def __init__(self, content: Content, workspace: str, referrers: dict[str, oci.Image]) -> None:
        self.sizes: dict[str, int] = {}
        self.tag_blobs: dict[Tag, set[str]] = {}
        for name, tags in content.tagged.items():
            if not name.startswith(workspace + "/"):
                continue
            for tag, image in tags.items():
                reach = image.all_blobs()
                # A referrer is reachable through its subject.
                for sub in [image, *image.children]:
                    if sub.digest in referrers:
                        reach += referrers[sub.digest].all_blobs()
                self.sizes.update({b.digest: b.size for b in reach})
                self.tag_blobs[(name, tag)] = {b.digest for b in reach}

    def image_blobs(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for (name, _), blobs in self.tag_blobs.items():
            out[name] |= blobs
        return out

    def users(self) -> dict[str, set[str]]:
        """digest -> images reaching it"""
        out: dict[str, set[str]] = defaultdict(set)
        for name, blobs in self.image_blobs().items():
            for d in blobs:
                out[d].add(name)
        return out


@dataclass
class World:
    """A registry the read-only tests share: the standard content, plus an SBOM
    referring to the amd64 child of acme/api/worker's index."""

    server: RegistryServer
    content: Content
    model: Model


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = standard_registry(tmp_path_factory.mktemp("storage") / "r").start()
    try:
        content = push_content(server)
        amd = content.tagged["acme/api/worker"]["multi"].children[0]
        sbom = sbom_for(amd)
        with server.client("root") as c:
            oci.push(c, "acme/api/worker", sbom)
        yield World(server, content, Model(content, "acme", {amd.digest: sbom}))
    finally:
        server.stop()


def test_storage_figures_equal_the_sums_of_what_was_pushed(world: World) -> None:
    registry, content, model = world.server, world.content, world.model
    users = model.users()
    size = model.sizes
    with api(registry, "wsadmin") as c:
        figures = c.get("/workspaces/acme/storage").json()
    assert figures["stored"] == sum(size.values())
    assert figures["referenced"] == sum(size.values())
    assert figures["shared"] == sum(size[d] for d, imgs in users.items() if len(imgs) > 1)
    assert figures["pending"] == 0
    assert figures["logical"] == sum(size[d] * len(imgs) for d, imgs in users.items())
    assert figures["saving"] == figures["logical"] - figures["referenced"]
    assert figures["blob_count"] == len(size)
    per_repo = {r["slug"]: r for r in figures["repositories"]}
    for slug in ("web", "api"):
        mine = {d: imgs for d, imgs in users.items() if any(i.split("/")[1] == slug for i in imgs)}
        assert per_repo[slug]["exclusive"] == sum(
            size[d] for d, imgs in mine.items() if len(imgs) == 1
        ), slug
        assert per_repo[slug]["shared"] == sum(
            size[d] for d, imgs in mine.items() if len(imgs) > 1
        ), slug
    assert per_repo["web"]["image_count"] == 2
    # Workspaces never share blobs: globex holds its own copy of the base layer.
    with api(registry) as c:
        globex = c.get("/workspaces/globex/storage").json()
    cli = content.blobs_of("globex/tools/cli", "v1")
    assert globex["stored"] == sum(cli.values())
    assert globex["shared"] == 0


def test_storage_overview_is_the_three_answers_at_once(world: World) -> None:
    """The overview holds what storage, gc and storage/history answer, for what the
    caller may read (reader: read on acme/web only)."""
    for user in ("wsadmin", "reader"):
        with api(world.server, user) as c:
            overview = c.get("/workspaces/acme/storage/overview")
            assert overview.status_code == 200, overview.text
            assert overview.json() == {
                "storage": c.get("/workspaces/acme/storage").json(),
                "gc": c.get("/workspaces/acme/gc").json(),
                "history": c.get("/workspaces/acme/storage/history").json(),
            }
    repositories = overview.json()["storage"]["repositories"]
    assert [r["slug"] for r in repositories] == ["web"]


def test_storage_overview_never_pairs_figures_with_a_run_they_predate(
    registry_factory: Callable[..., RegistryServer],
) -> None:
    """Overviews read while GC runs: one that lists the run shows the figures after it."""
    server = registry_factory(review_delay=3600)
    content = push_content(server)
    server.upload_grace = 0  # pushed under the grace; now GC may free at once
    server.restart()
    fe = content.ids["acme/web/frontend"]
    answers: list[dict[str, Any]] = []
    stop = threading.Event()

    def read_overviews() -> None:
        with api(server, "wsadmin") as c:
            while not stop.is_set():
                answers.append(c.get("/workspaces/acme/storage/overview").json())

    with api(server, "wsadmin") as c:
        assert c.delete(f"/images/{fe}/tags/v1", headers=as_listed(c, fe)).status_code == 204
        before = c.get("/workspaces/acme/storage").json()
        assert before["pending"] > 0
        reader = threading.Thread(target=read_overviews)
        reader.start()
        try:
            run = c.post("/workspaces/acme/gc/run").json()
        finally:
            stop.set()
            reader.join()
        last = c.get("/workspaces/acme/storage/overview").json()
    assert run["bytes_freed"] == before["pending"]
    for answer in [*answers, last]:
        figures, status = answer["storage"], answer["gc"]
        assert status["pending_bytes"] == figures["pending"]
        if run["id"] in [r["id"] for r in status["recent_runs"]]:
            assert figures["pending"] == 0
            assert figures["stored"] == before["stored"] - run["bytes_freed"]
            assert run["id"] in [r["id"] for r in answer["history"]["gc_runs"]]
    assert last["gc"]["recent_runs"][0] == run


def test_shared_layers(world: World) -> None:
    registry, content = world.server, world.content
    base = content.base
    assert base is not None
    with api(registry, "wsadmin") as c:
        layers = c.get("/workspaces/acme/storage/shared-layers").json()
        assert layers["total"] == 1
        (layer,) = layers["items"]
        assert (layer["digest"], layer["size"], layer["image_count"]) == (
            base.digest,
            base.size,
            3,
        )
        assert sorted(i["full_name"] for i in layer["images"]) == [
            "acme/api/worker",
            "acme/web/backend",
            "acme/web/frontend",
        ]
        only_api = c.get("/workspaces/acme/storage/shared-layers", params={"repository": "api"})
        assert [x["digest"] for x in only_api.json()["items"]] == [base.digest]
        by_count = c.get("/workspaces/acme/storage/shared-layers", params={"sort": "image_count"})
        assert by_count.json()["total"] == 1
    with api(registry) as c:
        assert c.get("/workspaces/globex/storage/shared-layers").json()["total"] == 0


SCENARIOS: dict[str, tuple[list[Tag], list[str]]] = {
    "a tag whose digest another tag holds": ([("acme/web/frontend", "v2")], []),
    "both tags of a digest": ([("acme/web/frontend", "v2"), ("acme/web/frontend", "latest")], []),
    "an index child's tag": ([("acme/api/worker", "1.0")], []),
    "the index tag": ([("acme/api/worker", "multi")], []),
    "index and child": ([("acme/api/worker", "multi"), ("acme/api/worker", "1.0")], []),
    "an image": ([], ["acme/api/worker"]),
    "every image": ([], ["acme/web/frontend", "acme/web/backend", "acme/api/worker"]),
    "a tag and another image": ([("acme/web/frontend", "v1")], ["acme/web/backend"]),
    "tags of an image also deleted": ([("acme/web/backend", "v1")], ["acme/web/backend"]),
    "unknown tags": ([("acme/web/frontend", "nope")], []),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_delete_impact_matches_the_reference_arithmetic(world: World, scenario: str) -> None:
    registry, content, model = world.server, world.content, world.model
    tags, images = SCENARIOS[scenario]
    deleting = set(tags) | {t for t in model.tag_blobs if t[0] in images}
    expected = delete_impact(model.sizes, model.tag_blobs, deleting)  # type: ignore[arg-type]
    with api(registry, "wsadmin") as c:
        r = c.post(
            "/workspaces/acme/storage/delete-impact",
            json={
                "tags": [{"image_id": content.ids[n], "tag": t} for n, t in tags],
                "images": [content.ids[n] for n in images],
            },
        )
    assert r.status_code == 200, r.text
    figures = {k: r.json()[k] for k in ("freed", "kept", "freed_blobs", "kept_blobs")}
    assert figures == {
        "freed": expected.freed,
        "kept": expected.kept,
        "freed_blobs": expected.freed_blobs,
        "kept_blobs": expected.kept_blobs,
    }
    assert r.json()["tags"] == len(deleting & set(model.tag_blobs))


def test_delete_impact_counts_and_names_the_tags_that_stay(registry: RegistryServer) -> None:
    """Per manifest of a deleted tag: every other tag of the image on it, counted by
    the server (a listing names at most 20 other tags), the first 20 named."""
    seed = oci.image([oci.random_layer(1000, "a")], label="a")
    other = oci.image([oci.random_layer(1000, "b")], label="b")
    many = [f"r{i:02d}" for i in range(41)] + ["v1"]
    with registry.client("root") as c:
        oci.push(c, "acme/web/app", seed, "r00")
        oci.push(c, "acme/web/app", other, "x1")
        for name in many[1:]:
            oci.push(c, "acme/web/app", seed, name)
        for name in ("x2", "x3"):
            oci.push(c, "acme/web/app", other, name)
    with api(registry, "writer") as c:
        image = c.get("/workspaces/acme/images").json()["items"][0]
        going = [f"r{i:02d}" for i in range(3, 13)] + ["x2"]
        r = c.post(
            "/workspaces/acme/storage/delete-impact",
            json={"tags": [{"image_id": image["id"], "tag": t} for t in [*going, "gone"]]},
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["tags"] == 11
        staying = {item["digest"]: item for item in answer["staying"]}
        assert staying.keys() == {seed.digest, other.digest}
        first = sorted(set(many) - set(going))
        assert staying[seed.digest] == {
            "image_id": image["id"],
            "digest": seed.digest,
            "count": 32,
            "tags": first[:20],
        }
        assert staying[other.digest]["count"] == 2
        assert staying[other.digest]["tags"] == ["x1", "x3"]

        # An image delete: every tag goes, nothing stays.
        r = c.post(
            "/workspaces/acme/storage/delete-impact",
            json={"images": [image["id"]], "tags": [{"image_id": image["id"], "tag": "r01"}]},
        )
        assert r.json()["tags"] == 45
        assert r.json()["staying"] == []


def stored_objects(data: Path) -> dict[str, int]:
    """digest -> size of every object under the blob store (all workspaces)."""
    out = {}
    for path in (data / "blobs").glob("*/*/*/*/*"):
        out[f"{path.parts[-4]}:{path.parts[-2]}"] = path.stat().st_size
    return out


def pull_verified(server: RegistryServer, name: str, tag: str) -> None:
    """Pull a tag completely (index children too), checking every digest."""
    accept = f"{oci.OCI_MANIFEST}, {oci.OCI_INDEX}"
    with server.client("root") as c:

        def fetch(path: str, digest: str | None) -> bytes:
            r = c.get(f"/v2/{name}/{path}", headers={"Accept": accept})
            assert r.status_code == 200, f"{name} {path}: {r.status_code}"
            if digest is not None:
                assert "sha256:" + hashlib.sha256(r.content).hexdigest() == digest
            return r.content

        def walk(ref: str, digest: str | None) -> None:
            manifest = json.loads(fetch(f"manifests/{ref}", digest))
            for child in manifest.get("manifests", []):
                walk(child["digest"], child["digest"])
            for blob in [manifest.get("config"), *manifest.get("layers", [])]:
                if blob:
                    fetch(f"blobs/{blob['digest']}", blob["digest"])

        walk(tag, None)


def test_delete_impact_is_what_gc_frees(registry_factory: Callable[..., RegistryServer]) -> None:
    server = registry_factory(review_delay=3600)
    content = push_content(server)
    # Pushed under the upload grace (which keeps a push's blobs while its manifest is
    # still coming); restarted without it, GC may free at once what nothing references.
    server.upload_grace = 0
    server.restart()
    fe, worker = content.ids["acme/web/frontend"], content.ids["acme/api/worker"]
    with api(server, "wsadmin") as c:
        impact = c.post(
            "/workspaces/acme/storage/delete-impact",
            json={"tags": [{"image_id": fe, "tag": "v1"}], "images": [worker]},
        ).json()
        assert impact["freed"] > 0
        before = c.get("/workspaces/acme/storage").json()
        objects_before = stored_objects(server.data)
        assert c.delete(f"/images/{fe}/tags/v1", headers=as_listed(c, fe)).status_code == 204
        assert c.delete(f"/images/{worker}", headers=as_listed(c, worker)).status_code == 204
        pending = c.get("/workspaces/acme/storage").json()
        assert pending["pending"] == impact["freed"]
        status = c.get("/workspaces/acme/gc").json()
        assert status["pending_bytes"] == impact["freed"]
        assert status["review_delay_s"] == 3600
        run = c.post("/workspaces/acme/gc/run")
        assert run.status_code == 200, run.text
        record = run.json()
        assert record["bytes_freed"] == impact["freed"]
        assert record["blobs_deleted"] == impact["freed_blobs"]
        assert "manual" in record["triggers"]
        after = c.get("/workspaces/acme/storage").json()
        assert after["stored"] == before["stored"] - impact["freed"]
        assert after["pending"] == 0
        objects_after = stored_objects(server.data)
        gone = set(objects_before) - set(objects_after)
        assert sum(objects_before[d] for d in gone) == impact["freed"]
        assert content.base is not None
        assert content.base.digest in objects_after
        status = c.get("/workspaces/acme/gc").json()
        assert status["recent_runs"][0] == record
        assert (status["queued_manifests"], status["queued_blobs"]) == (0, 0)
        history = c.get("/workspaces/acme/storage/history").json()
        assert record["id"] in [r["id"] for r in history["gc_runs"]]
        assert history["samples"][-1]["stored"] == after["stored"]
        assert c.get(
            "/workspaces/acme/storage/history", params={"since": "2999-01-01T00:00:00Z"}
        ).json() == {
            "samples": [],
            "gc_runs": [],
        }
        bad = c.get("/workspaces/acme/storage/history", params={"since": "yesterday"})
        assert bad.status_code == 400
        audit = [e["action"] for e in c.get("/workspaces/acme/audit").json()["items"]]
        assert "gc.run" in audit
    for name, tags in content.tagged.items():
        for tag in tags:
            if (name, tag) != ("acme/web/frontend", "v1") and name != "acme/api/worker":
                pull_verified(server, name, tag)
