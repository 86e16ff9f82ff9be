"""Recently deleted (issue 13), getting it back: every deletion path -> trash ->
restore through the API -> skopeo pulls the same digest; a reused name is refused
with a message that says so, and restores under another name (API ``as``, CLI
``--as``); who may list, restore and empty; events on the stream and the audit log;
emptying makes the bytes pending GC and GC frees exactly them. A real registry over
HTTP, real skopeo; fsck clean at the end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support import oci
from tests.support.api import api, as_listed
from tests.support.event_stream import Stream
from tests.support.gc_checks import Metadata, objects, skopeo_pull, wait_until
from tests.support.registry import RegistryServer, admin, admin_ok

APP = "acme/web/app"
GONE = "acme/web/gone"


def _img(label: str, size: int = 3_000) -> oci.Image:
    return oci.image([oci.random_layer(size, label)], label=label)


def _image_id(c: httpx.Client, full_name: str) -> int:
    items = c.get("/workspaces/acme/images", params={"q": full_name.rsplit("/", 1)[1]}).json()
    return int(next(i["id"] for i in items["items"] if i["full_name"] == full_name))


def _trash(c: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = c.get("/workspaces/acme/trash", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _entry(c: httpx.Client, image: str, tag: str | None) -> dict[str, Any]:
    found = [x for x in _trash(c) if x["image"] == image and x["tag"] == tag]
    assert len(found) == 1, found
    return found[0]


def _restore(c: httpx.Client, *items: dict[str, Any]) -> list[dict[str, Any]]:
    r = c.post("/workspaces/acme/trash/restore", json={"entries": list(items)})
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def _fsck_clean(server: RegistryServer) -> None:
    result = admin(server.data, "fsck")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_deletion_path_restores_and_pulls_the_same_digest(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path
) -> None:
    server = registry_factory(review_delay=0, upload_grace=5, trash_retention=3600)
    imgs = {n: _img(n) for n in ("v1", "v2", "v3", "d", "old", "new", "g")}
    with server.client("admin") as w:
        for tag in ("v1", "v2", "v3", "d"):
            oci.push(w, APP, imgs[tag], tag)
        oci.push(w, APP, imgs["old"], "mv")
        oci.push(w, GONE, imgs["g"], "g1")
        oci.push(w, GONE, imgs["g"], "g2")
        assert w.delete(f"/v2/{APP}/manifests/v1").status_code == 202
        assert w.delete(f"/v2/{APP}/manifests/{imgs['d'].digest}").status_code == 202
        oci.push(w, APP, imgs["new"], "mv")  # moves mv: restoring it rolls it back
    stream = Stream(server, "wsadmin")
    try:
        with api(server, "admin") as c:
            app_id, gone_id = _image_id(c, APP), _image_id(c, GONE)
            assert c.delete(f"/images/{app_id}/tags/v2", headers=as_listed(c, app_id)).is_success
            r = c.post(
                f"/images/{app_id}/tags/delete", json={"tags": ["v3"]}, headers=as_listed(c, app_id)
            )
            assert r.json()["deleted"] == 1
            assert c.delete(f"/images/{gone_id}", headers=as_listed(c, gone_id)).is_success
            entries = {(x["image"], x["tag"]): x for x in _trash(c)}
            assert set(entries) == {
                (APP, "v1"), (APP, "v2"), (APP, "v3"), (APP, "d"), (APP, "mv"), (GONE, None)
            }  # fmt: skip
            mv = entries[(APP, "mv")]
            assert (mv["digest"], mv["replaced_by"], mv["action"]) == (
                imgs["old"].digest, imgs["new"].digest, "tag.move"
            )  # fmt: skip
            assert entries[(GONE, None)]["kind"] == "image"
            assert entries[(GONE, None)]["tag_count"] == 2
            results = _restore(c, *({"id": x["id"]} for x in entries.values()))
            assert [r["status"] for r in results] == ["restored"] * 6, results
            # Only the digest the rollback took mv off is left (see below).
            left = [(x["tag"], x["action"]) for x in _trash(c)]
            assert left == [("mv", "tag.rollback")]
            # The image is back under its id with both tags.
            assert c.get(f"/images/{gone_id}").json()["tag_count"] == 2
        seen = [e["type"] for e in stream.until("restored")]
        assert "trashed" in seen
    finally:
        stream.close()
    pulls = [(APP, t, imgs[t]) for t in ("v1", "v2", "v3", "d")]
    pulls += [(APP, "mv", imgs["old"]), (GONE, "g1", imgs["g"]), (GONE, "g2", imgs["g"])]
    for name, tag, img in pulls:
        skopeo_pull(server.host, name, tag, img, tmp_path / "pull" / name / tag)
    # The rollback left the digest the push had put there restorable in turn.
    with api(server, "admin") as c:
        back = _entry(c, APP, "mv")
        assert (back["digest"], back["action"]) == (imgs["new"].digest, "tag.rollback")
    with api(server, "wsadmin") as c:
        audit = c.get("/workspaces/acme/audit", params={"limit": 1000}).json()["items"]
    restores = [a for a in audit if a["action"] == "trash.restore"]
    assert {(a["target"], a["actor"]) for a in restores} >= {
        (f"{APP}:v1", "admin"),
        (GONE, "admin"),
    }
    server.stop()
    _fsck_clean(server)


def test_a_reused_name_is_refused_and_restores_under_another(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path
) -> None:
    server = registry_factory(review_delay=0, upload_grace=5, trash_retention=3600)
    first, second, img3 = _img("first"), _img("second"), _img("third")
    with server.client("admin") as w:
        oci.push(w, APP, first, "v1")
        assert w.delete(f"/v2/{APP}/manifests/v1").status_code == 202
        oci.push(w, APP, second, "v1")  # the name is taken by another digest now
        oci.push(w, GONE, img3, "x")
    with api(server, "admin") as c:
        gone_id = _image_id(c, GONE)
        assert c.delete(f"/images/{gone_id}", headers=as_listed(c, gone_id)).is_success
    with server.client("admin") as w:
        oci.push(w, GONE, second, "y")  # a new image of the same name
    with api(server, "admin") as c:
        entry = _entry(c, APP, "v1")
        (refused,) = _restore(c, {"id": entry["id"]})
        assert refused["status"] == "conflict"
        assert "pushed again" in refused["message"]
        assert "another name" in refused["message"]
        (bad,) = _restore(c, {"id": entry["id"], "as": "no spaces"})
        assert bad["status"] == "invalid"
        (ok,) = _restore(c, {"id": entry["id"], "as": "v1-old"})
        assert (ok["status"], ok["tag"], ok["digest"]) == ("restored", "v1-old", first.digest)
        # A second restore of the same entry: it is no longer there.
        (again,) = _restore(c, {"id": entry["id"]})
        assert again["status"] == "not_found"
        image_entry = _entry(c, GONE, None)
        (taken,) = _restore(c, {"id": image_entry["id"]})
        assert taken["status"] == "conflict"
        assert "image named gone" in taken["message"]
    # The CLI: list as JSON, refuse the taken image name, restore it under another.
    lines = admin_ok(server.data, "trash", "list", "--workspace", "acme", "--json").splitlines()
    listed = [json.loads(line) for line in lines]
    assert [(x["image"], x["tag"]) for x in listed] == [(GONE, None)]
    assert {"image", "tag", "digest", "deleted_at", "deleted_by", "expires_at"} <= set(listed[0])
    assert listed[0]["deleted_by"] == "admin"
    refused_cli = admin(server.data, "trash", "restore", GONE)
    assert refused_cli.returncode != 0
    assert "another name" in refused_cli.stderr
    out = admin_ok(server.data, "trash", "restore", GONE, "--as", "gone-again")
    assert "restored acme/web/gone-again" in out
    skopeo_pull(server.host, APP, "v1-old", first, tmp_path / "a")
    skopeo_pull(server.host, APP, "v1", second, tmp_path / "b")
    skopeo_pull(server.host, "acme/web/gone-again", "x", img3, tmp_path / "c")
    skopeo_pull(server.host, GONE, "y", second, tmp_path / "d")
    server.stop()
    _fsck_clean(server)


def test_cli_restores_a_tag_under_another_name(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path
) -> None:
    server = registry_factory(review_delay=0, upload_grace=5, trash_retention=3600)
    first, second = _img("c-first"), _img("c-second")
    with server.client("admin") as w:
        oci.push(w, APP, first, "v1")
        assert w.delete(f"/v2/{APP}/manifests/v1").status_code == 202
        oci.push(w, APP, second, "v1")
    refused = admin(server.data, "trash", "restore", f"{APP}:v1")
    assert refused.returncode != 0
    assert "pushed again" in refused.stderr
    out = admin_ok(server.data, "trash", "restore", f"{APP}:v1", "--as", "v1-before")
    assert f"restored {APP}:v1-before on {first.digest}" in out
    assert admin_ok(server.data, "trash", "list").strip() == "trash: empty"
    skopeo_pull(server.host, APP, "v1-before", first, tmp_path / "a")
    # Deleted again, listed for its image, then emptied from the command line.
    with server.client("admin") as w:
        assert w.delete(f"/v2/{APP}/manifests/v1-before").status_code == 202
    listed = admin_ok(server.data, "trash", "list", "--image", APP)
    assert f"{APP}:v1-before" in listed
    assert first.digest in listed
    assert admin_ok(server.data, "trash", "list", "--image", GONE).strip() == "trash: empty"
    out = admin_ok(server.data, "trash", "empty", "--workspace", "acme")
    assert "1 entries emptied" in out
    assert admin_ok(server.data, "trash", "list").strip() == "trash: empty"
    server.stop()
    _fsck_clean(server)


def test_who_may_list_restore_and_empty(registry_factory: Callable[..., RegistryServer]) -> None:
    server = registry_factory(review_delay=0, upload_grace=5, trash_retention=3600)
    a, b, g = _img("pa"), _img("pb"), _img("pg")
    with server.client("admin") as w:
        oci.push(w, APP, a, "a")
        oci.push(w, APP, b, "b")
        oci.push(w, GONE, g, "g")
        assert w.delete(f"/v2/{APP}/manifests/a").status_code == 202
        assert w.delete(f"/v2/{APP}/manifests/b").status_code == 202
    with api(server, "admin") as c:
        gone_id = _image_id(c, GONE)
        assert c.delete(f"/images/{gone_id}", headers=as_listed(c, gone_id)).is_success
        ids = {(x["image"], x["tag"]): x["id"] for x in _trash(c)}
    tag_a, tag_b, image = ids[(APP, "a")], ids[(APP, "b")], ids[(GONE, None)]
    # An outsider (no access to acme) sees no workspace; a reader sees the entries.
    with api(server, "outsider") as c:
        assert c.get("/workspaces/acme/trash").status_code == 404
    with api(server, "reader") as c:
        assert {x["id"] for x in _trash(c)} == {tag_a, tag_b, image}
        results = _restore(c, {"id": tag_a})
        assert results[0]["status"] == "forbidden"
        assert "write" in results[0]["message"]
        r = c.post("/workspaces/acme/trash/empty", json={"all": True})
        assert r.status_code == 403, r.text
    with api(server, "writer") as c:
        # An entry asked twice in one call is restored once and answers the same.
        results = _restore(c, {"id": tag_a}, {"id": image}, {"id": 10**9}, {"id": tag_a})
        assert [x["status"] for x in results] == ["restored", "forbidden", "not_found", "restored"]
        assert "admin" in results[1]["message"]
        r = c.post("/workspaces/acme/trash/empty", json={"entries": [tag_b]})
        assert r.json()["results"] == [{"id": tag_b, "status": "forbidden"}]
    with api(server, "admin") as c:
        (ok,) = _restore(c, {"id": image})
        assert ok["status"] == "restored"
        r = c.post("/workspaces/acme/trash/empty", json={"entries": [tag_b]})
        assert r.json() == {"results": [{"id": tag_b, "status": "emptied"}], "emptied": 1}
        nothing = c.post("/workspaces/acme/trash/empty", json={})
        assert nothing.json() == {"results": [], "emptied": 0}, nothing.text
    with api(server, "wsadmin") as c:
        audit = c.get("/workspaces/acme/audit", params={"limit": 1000}).json()["items"]
    assert ("trash.empty", f"{APP}:b", "admin") in {
        (x["action"], x["target"], x["actor"]) for x in audit
    }
    server.stop()
    _fsck_clean(server)


def test_emptied_entries_are_freed_by_gc_exactly(
    registry_factory: Callable[..., RegistryServer],
) -> None:
    server = registry_factory(review_delay=0, upload_grace=5, trash_retention=3600)
    keep, one, two = _img("e-keep"), _img("e-one", 4_000), _img("e-two", 6_000)
    with server.client("admin") as w:
        oci.push(w, APP, keep, "keep")
        oci.push(w, APP, one, "one")
        oci.push(w, GONE, two, "two")
        assert w.delete(f"/v2/{APP}/manifests/one").status_code == 202
    with api(server, "admin") as c:
        gone_id = _image_id(c, GONE)
        assert c.delete(f"/images/{gone_id}", headers=as_listed(c, gone_id)).is_success
    freed = sum(b.size for img in (one, two) for b in img.all_blobs())
    with Metadata(server.data) as meta:
        assert meta.totals().in_trash == freed
        run = meta.last_run_id()
        with api(server, "wsadmin") as c:
            r = c.post("/workspaces/acme/trash/empty", json={"all": True})
            assert r.json()["emptied"] == 2, r.text
        wait_until(lambda: meta.freed_since(run)[0] >= freed, "GC freed the emptied trash")
        assert meta.freed_since(run)[0] == freed
        ws = meta.workspace_id()
        assert all(objects(server.data, ws, b.digest) for b in keep.all_blobs())
        for img in (one, two):
            assert not any(objects(server.data, ws, b.digest) for b in img.all_blobs())
    server.stop()
    _fsck_clean(server)
