"""Deleting through the management API: one tag, many tags, a whole image. The
references go at once (the OCI API answers 404), other tags stay, GC reviews are
queued, audit rows written; storage is not freed until GC."""

from __future__ import annotations

import sqlite3

import pytest

from tests.support import oci
from tests.support.api import Content, api, as_listed, push_content
from tests.support.registry import RegistryServer


@pytest.fixture
def content(registry: RegistryServer) -> Content:
    return push_content(registry)


def pull_status(server: RegistryServer, name: str, reference: str) -> int:
    with server.client("root") as c:
        return c.get(
            f"/v2/{name}/manifests/{reference}",
            headers={"Accept": f"{oci.OCI_MANIFEST}, {oci.OCI_INDEX}"},
        ).status_code


def test_delete_one_tag_keeps_its_digest_for_other_tags(
    registry: RegistryServer, content: Content
) -> None:
    fe = content.ids["acme/web/frontend"]
    v2 = content.tagged["acme/web/frontend"]["v2"]
    with api(registry) as c:
        # The index's children were pushed by digest: they are queued already.
        queued = c.get("/workspaces/acme/gc").json()["queued_manifests"]
    with api(registry, "writer") as c:
        assert c.delete(f"/images/{fe}/tags/v2", headers=as_listed(c, fe)).status_code == 204
        assert pull_status(registry, "acme/web/frontend", "v2") == 404
        assert pull_status(registry, "acme/web/frontend", "latest") == 200
        assert pull_status(registry, "acme/web/frontend", v2.digest) == 200
        tags = {t["name"]: t for t in c.get(f"/images/{fe}/tags").json()["items"]}
        assert list(tags) == ["latest", "v1"]
        assert tags["latest"]["other_tags"] == []
        again = c.delete(f"/images/{fe}/tags/v2", headers=as_listed(c, fe))
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "NOT_FOUND"
        missing = c.delete(f"/images/{fe}/tags/not..valid", headers=as_listed(c, fe))
        assert missing.status_code == 404
    with api(registry, "wsadmin") as c:
        gc = c.get("/workspaces/acme/gc").json()
        assert gc["queued_manifests"] == queued + 1
        assert gc["due_manifests"] == 0  # the review delay has not passed
        assert gc["next_review_at"] is not None
        # Nothing was freed, and nothing is unreferenced yet: v2's digest is still tagged.
        assert c.get("/workspaces/acme/storage").json()["pending"] == 0
        audit = c.get("/workspaces/acme/audit").json()["items"]
        assert (audit[0]["actor"], audit[0]["action"], audit[0]["target"]) == (
            "writer",
            "tag.delete",
            "acme/web/frontend:v2",
        )
        assert audit[0]["detail"] == {"digest": v2.digest}


def test_bulk_delete_reports_each_tag(registry: RegistryServer, content: Content) -> None:
    fe = content.ids["acme/web/frontend"]
    with api(registry) as c:
        queued = c.get("/workspaces/acme/gc").json()["queued_manifests"]
    with api(registry, "writer") as c:
        r = c.post(
            f"/images/{fe}/tags/delete",
            json={"tags": ["v1", "nope", "bad tag!", "latest"]},
            headers=as_listed(c, fe),
        )
        assert r.status_code == 200
        body = r.json()
        assert body["deleted"] == 2
        assert [(x["tag"], x["status"]) for x in body["results"]] == [
            ("v1", "deleted"),
            ("nope", "not_found"),
            ("bad tag!", "error"),
            ("latest", "deleted"),
        ]
        assert [t["name"] for t in c.get(f"/images/{fe}/tags").json()["items"]] == ["v2"]
        assert pull_status(registry, "acme/web/frontend", "v1") == 404
        listed = as_listed(c, fe)
        too_many = c.post(f"/images/{fe}/tags/delete", json={"tags": ["x"] * 1001}, headers=listed)
        assert too_many.status_code == 400
        assert too_many.json()["error"]["code"] == "INVALID_ARGUMENT"
        empty = c.post(f"/images/{fe}/tags/delete", json={"tags": []}, headers=listed)
        assert empty.status_code == 400
    with api(registry, "wsadmin") as c:
        gc = c.get("/workspaces/acme/gc").json()
        # v1's manifest, and v2's (which the tag v2 still holds) are queued for review.
        assert gc["queued_manifests"] == queued + 2
        # v1's own layer and config are unreferenced now: pending, waiting for GC.
        v1 = content.tagged["acme/web/frontend"]["v1"]
        own = sum(b.size for b in v1.blobs if b.digest != content.base.digest)  # type: ignore[union-attr]
        assert c.get("/workspaces/acme/storage").json()["pending"] == own


def test_delete_image_removes_everything_at_once(
    registry: RegistryServer, content: Content
) -> None:
    worker = content.ids["acme/api/worker"]
    multi = content.tagged["acme/api/worker"]["multi"]
    with api(registry, "wsadmin") as c:
        before = c.get("/workspaces/acme/storage").json()
        listed = as_listed(c, worker)
        assert c.delete(f"/images/{worker}", headers=listed).status_code == 204
        assert c.get(f"/images/{worker}").status_code == 404
        assert c.get(f"/images/{worker}/tags").status_code == 404
        assert c.delete(f"/images/{worker}", headers=listed).status_code == 404
        for ref in ("1.0", "multi", multi.digest, multi.children[1].digest):
            assert pull_status(registry, "acme/api/worker", ref) == 404
        after = c.get("/workspaces/acme/storage").json()
        # Everything only the worker reached is pending now; the base layer is shared.
        exclusive = {
            b.digest: b.size
            for b in multi.all_blobs()
            if b.digest != content.base.digest  # type: ignore[union-attr]
        }
        assert after["pending"] == sum(exclusive.values())
        assert after["stored"] == before["stored"]
        assert after["referenced"] == before["referenced"] - sum(exclusive.values())
        gc = c.get("/workspaces/acme/gc").json()
        assert gc["queued_blobs"] >= len(exclusive)
        assert [i["name"] for i in c.get("/workspaces/acme/images").json()["items"]] == [
            "backend",
            "frontend",
        ]
        audit = c.get("/workspaces/acme/audit").json()["items"][0]
        assert (audit["actor"], audit["action"], audit["target"]) == (
            "wsadmin",
            "image.delete",
            "acme/api/worker",
        )
        assert audit["detail"] == {"manifests": 3, "tags": 2}


def test_a_locked_store_answers_503_busy(registry: RegistryServer, content: Content) -> None:
    fe = content.ids["acme/web/frontend"]
    db = sqlite3.connect(registry.data / "registry.db", isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")  # hold the write lock, as a stuck writer would
        with api(registry, "writer") as c:
            r = c.delete(f"/images/{fe}/tags/v1", headers={"If-Match": "*"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "BUSY"
        assert r.headers["retry-after"] == "1"
    finally:
        db.execute("ROLLBACK")
        db.close()
    with api(registry, "writer") as c:
        assert c.delete(f"/images/{fe}/tags/v1", headers=as_listed(c, fe)).status_code == 204
