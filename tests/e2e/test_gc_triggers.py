"""Each GC trigger end to end against a real server: the deleted reference answers
404 at once, pending equals the exclusive bytes the test computes from what it
pushed, and after the review delay the GC frees exactly those bytes (their objects
leave the disk) while shared blobs stay and every remaining tag pulls with skopeo."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import oci
from tests.support.api import api, as_listed
from tests.support.gc_checks import (
    Metadata,
    exclusive_bytes,
    objects,
    skopeo_pull,
    wait_until,
)
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.e2e

# GC collects a blob no manifest references once the upload grace has passed: the
# grace outlasts any push of the scene on a busy machine (else GC rightly takes a
# blob before its manifest arrives), and the review delay any delete-and-check.
REVIEW_DELAY = 5.0
GRACE = 10.0
APP = "acme/web/app"
SVC = "acme/api/svc"
SIZE = 40_000


@dataclass
class Scene:
    server: RegistryServer
    meta: Metadata
    client: httpx.Client
    base: oci.Blob
    tagged: dict[tuple[str, str], oci.Image] = field(default_factory=dict)
    runs_before: int = 0  # the last GC run recorded before the test's deletes
    stored_before: int = 0

    def push(self, name: str, tag: str, img: oci.Image) -> None:
        oci.push(self.client, name, img, tag)
        self.tagged[(name, tag)] = img


@pytest.fixture
def scene(registry_factory: Callable[..., RegistryServer]) -> Iterator[Scene]:
    server = registry_factory(review_delay=REVIEW_DELAY, upload_grace=GRACE)
    base = oci.random_layer(SIZE, "trigger-base")
    with Metadata(server.data) as meta, server.client("root") as client:
        sc = Scene(server, meta, client, base)
        sc.push(APP, "v1", oci.image([base, oci.random_layer(SIZE, "a1")], label="a1"))
        sc.push(APP, "v2", oci.image([base, oci.random_layer(SIZE, "a2")], label="a2"))
        amd = oci.image([base, oci.random_layer(SIZE, "m-amd")], label="amd")
        arm = oci.image([base, oci.random_layer(SIZE, "m-arm")], label="arm", arch="arm64")
        sc.push(APP, "multi", oci.index([amd, arm]))
        sc.push(SVC, "v1", oci.image([base, oci.random_layer(SIZE, "s1")], label="s1"))
        totals = meta.totals()
        assert totals.pending == 0
        sc.runs_before, sc.stored_before = meta.last_run_id(), totals.stored
        yield sc


def _pending_is_exclusive(sc: Scene, gone: list[oci.Image]) -> int:
    """Right after the delete (the review delay has not passed): pending equals the
    bytes only ``gone`` reached, computed from what the test pushed."""
    expected = exclusive_bytes(gone, list(sc.tagged.values()))
    assert expected > 0
    assert sc.meta.totals().pending == expected
    return expected


def _collect(sc: Scene, gone: list[oci.Image], expected: int, tmp_path: Path) -> None:
    """After the review delay GC frees exactly the ``expected`` bytes, their objects
    leave the disk, shared blobs stay, and every remaining tag pulls."""
    ws = sc.meta.workspace_id()
    staying = list(sc.tagged.values())
    exclusive = {b.digest for img in gone for b in img.all_blobs()} - {
        b.digest for img in staying for b in img.all_blobs()
    }

    # Deletes sent one after another fall due one after another, so GC may review
    # them in several runs; and blob rows go batch by batch, a run being recorded
    # when its pass ends. The end state: nothing pending, and the recorded runs
    # account for every byte that left the store.
    def settled() -> bool:
        totals = sc.meta.totals()
        left = sc.stored_before - totals.stored
        return totals.pending == 0 and sc.meta.freed_since(sc.runs_before)[0] == left

    wait_until(settled, "the GC to free the pending bytes and record its runs")
    freed, blobs, _manifests = sc.meta.freed_since(sc.runs_before)
    assert freed == expected
    assert blobs == len(exclusive)
    assert sc.meta.totals().stored == sc.stored_before - expected
    for digest in exclusive:
        assert objects(sc.server.data, ws, digest) == [], f"{digest} is still on disk"
    for img in staying:
        for blob in img.all_blobs():
            assert len(objects(sc.server.data, ws, blob.digest)) == 1
    for (name, tag), img in sorted(sc.tagged.items()):
        skopeo_pull(sc.server.host, name, tag, img, tmp_path / "pulled" / name / tag)


def _gone_digest(sc: Scene, name: str, digest: str) -> None:
    r = sc.client.get(f"/v2/{name}/manifests/{digest}")
    assert r.status_code == 404, r.text


def test_tag_repush(scene: Scene, tmp_path: Path) -> None:
    old = scene.tagged[(APP, "v1")]
    new = oci.image([scene.base, oci.random_layer(SIZE, "a3")], label="a3")
    scene.push(APP, "v1", new)
    scene.stored_before += sum(b.size for b in new.blobs if b != scene.base)
    expected = _pending_is_exclusive(scene, [old])
    got = scene.client.get(f"/v2/{APP}/manifests/v1")
    assert got.headers["docker-content-digest"] == new.digest
    _collect(scene, [old], expected, tmp_path)
    _gone_digest(scene, APP, old.digest)


def test_tag_delete(scene: Scene, tmp_path: Path) -> None:
    assert scene.client.delete(f"/v2/{APP}/manifests/v1").status_code == 202
    gone = scene.tagged.pop((APP, "v1"))
    expected = _pending_is_exclusive(scene, [gone])
    assert scene.client.get(f"/v2/{APP}/manifests/v1").status_code == 404
    _collect(scene, [gone], expected, tmp_path)
    _gone_digest(scene, APP, gone.digest)


def test_index_tag_delete_frees_its_children(scene: Scene, tmp_path: Path) -> None:
    assert scene.client.delete(f"/v2/{APP}/manifests/multi").status_code == 202
    gone = scene.tagged.pop((APP, "multi"))
    expected = _pending_is_exclusive(scene, [gone])
    assert scene.client.get(f"/v2/{APP}/manifests/multi").status_code == 404
    _collect(scene, [gone], expected, tmp_path)
    for child in gone.children:
        _gone_digest(scene, APP, child.digest)


def _app_images(scene: Scene) -> list[oci.Image]:
    return [scene.tagged.pop(key) for key in sorted(scene.tagged) if key[0] == APP]


def test_image_delete_through_the_oci_api(scene: Scene, tmp_path: Path) -> None:
    # Deleting an image over the OCI API: every manifest by digest, indexes first.
    digests = {tag: scene.tagged[(APP, tag)].digest for tag in ("multi", "v1", "v2")}
    for digest in digests.values():
        assert scene.client.delete(f"/v2/{APP}/manifests/{digest}").status_code == 202
    gone = _app_images(scene)
    expected = _pending_is_exclusive(scene, gone)
    for tag in digests:
        assert scene.client.get(f"/v2/{APP}/manifests/{tag}").status_code == 404
    assert scene.client.get(f"/v2/{APP}/tags/list").json()["tags"] == []
    _collect(scene, gone, expected, tmp_path)
    for img in gone:
        _gone_digest(scene, APP, img.digest)


def test_image_delete_through_the_management_api(scene: Scene, tmp_path: Path) -> None:
    with api(scene.server, "admin") as c:
        items = c.get("/workspaces/acme/images", params={"q": "app"}).json()["items"]
        (image_id,) = [i["id"] for i in items if i["full_name"] == APP]
        assert c.delete(f"/images/{image_id}", headers=as_listed(c, image_id)).status_code == 204
        gone = _app_images(scene)
        expected = _pending_is_exclusive(scene, gone)
        assert c.get(f"/images/{image_id}").status_code == 404
    for tag in ("v1", "v2", "multi"):
        assert scene.client.get(f"/v2/{APP}/manifests/{tag}").status_code == 404
    _collect(scene, gone, expected, tmp_path)
