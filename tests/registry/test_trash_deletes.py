"""Recently deleted (issue 13), what a delete leaves: every deletion path writes a
trash entry (who, when, how, tag -> digest), the GC never frees what a live entry
holds, and once the entry expires its bytes are ordinary pending GC and go. The
trash is off with ``--trash-retention 0`` (deletes are final, as before) and on for
7 days by default. A real registry over HTTP; fsck is clean at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.registry.db import schema as s
from tests.support import oci
from tests.support.api import api, as_listed
from tests.support.gc_checks import Metadata, objects, skopeo_pull, wait_until
from tests.support.registry import RegistryServer, admin

APP = "acme/web/app"
GONE = "acme/web/gone"
DAY_S = 24 * 3600


def _img(label: str, size: int = 3_000) -> oci.Image:
    return oci.image([oci.random_layer(size, label)], label=label)


def _entries(meta: Metadata) -> set[tuple[str, str | None, str | None, str, str | None]]:
    """(image name, tag, digest, action, deleted_by) of every entry."""
    e, i = s.trash_entries.c, s.images.c
    with meta.db.read() as conn:
        return {
            (r.name, r.tag, r.digest, r.action, r.deleted_by)
            for r in conn.execute(
                select(i.name, e.tag, e.digest, e.action, e.deleted_by).join(
                    s.images, i.id == e.image_id
                )
            )
        }


def _gc_now(server: RegistryServer) -> None:
    with api(server, "wsadmin") as c:
        r = c.post("/workspaces/acme/gc/run")
        assert r.status_code in (200, 201, 202), r.text


def _fsck_clean(server: RegistryServer) -> None:
    result = admin(server.data, "fsck")
    assert result.returncode == 0, result.stdout + result.stderr


def _stored(server: RegistryServer, meta: Metadata, img: oci.Image) -> bool:
    ws = meta.workspace_id()
    return all(objects(server.data, ws, b.digest) for b in img.all_blobs())


def test_every_delete_path_leaves_an_entry_and_gc_keeps_it(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path
) -> None:
    server = registry_factory(review_delay=0, upload_grace=5, trash_retention=3600)
    imgs = {n: _img(n) for n in ("v1", "v2", "v3", "bydigest", "old", "new", "gone")}
    with server.client("writer") as w:
        for tag in ("v1", "v2", "v3", "bydigest", "old"):
            oci.push(w, APP, imgs[tag], tag if tag != "old" else "mv")
        oci.push(w, GONE, imgs["gone"], "g1")
        oci.push(w, GONE, imgs["gone"], "g2")
        # /v2/ DELETE by tag and by digest.
        assert w.delete(f"/v2/{APP}/manifests/v1").status_code == 202
        assert w.delete(f"/v2/{APP}/manifests/{imgs['bydigest'].digest}").status_code == 202
        # A manifest deleted by digest is gone for the OCI API, as before.
        assert w.get(f"/v2/{APP}/manifests/{imgs['bydigest'].digest}").status_code == 404
        # A push of the same tag moves it: the digest it left is restorable.
        oci.push(w, APP, imgs["new"], "mv")
    with api(server, "writer") as c:
        app_id = next(
            i["id"] for i in c.get("/workspaces/acme/images").json()["items"]
            if i["full_name"] == APP
        )  # fmt: skip
        r = c.delete(f"/images/{app_id}/tags/v2", headers=as_listed(c, app_id))
        assert r.status_code == 204, r.text
        r = c.post(
            f"/images/{app_id}/tags/delete", json={"tags": ["v3"]}, headers=as_listed(c, app_id)
        )
        assert r.json()["deleted"] == 1, r.text
    with api(server, "admin") as c:
        gone_id = next(
            i["id"] for i in c.get("/workspaces/acme/images").json()["items"]
            if i["full_name"] == GONE
        )  # fmt: skip
        assert c.delete(f"/images/{gone_id}", headers=as_listed(c, gone_id)).status_code == 204
        # The deleted image is gone from listings and by id.
        names = {i["full_name"] for i in c.get("/workspaces/acme/images").json()["items"]}
        assert GONE not in names
        assert c.get(f"/images/{gone_id}").status_code == 404
    with Metadata(server.data) as meta:
        assert _entries(meta) == {
            ("app", "v1", imgs["v1"].digest, "tag.delete", "writer"),
            ("app", "bydigest", imgs["bydigest"].digest, "manifest.delete", "writer"),
            ("app", "mv", imgs["old"].digest, "tag.move", "writer"),
            ("app", "v2", imgs["v2"].digest, "tag.delete", "writer"),
            ("app", "v3", imgs["v3"].digest, "tag.delete", "writer"),
            ("gone", None, None, "image.delete", "admin"),
        }
        e = s.trash_entries.c
        with meta.db.read() as conn:
            spans = set(conn.execute(select(e.expires_at - e.deleted_at)).scalars())
        assert spans == {3_600_000}
        # GC runs and keeps every byte the trash holds; their storage is "in trash".
        run = meta.last_run_id()
        _gc_now(server)
        wait_until(lambda: meta.last_run_id() > run, "a GC run")
        for name in ("v1", "v2", "v3", "bydigest", "old", "gone"):
            assert _stored(server, meta, imgs[name]), name
        totals = meta.totals()
        held = sum(
            b.size for n in ("v1", "v2", "v3", "bydigest", "old", "gone")
            for b in imgs[n].all_blobs()
        )  # fmt: skip
        assert totals.in_trash == held
        assert totals.pending == 0
    # The storage figures show the category: workspace, repository, overview.
    with api(server, "reader") as c:
        figures = c.get("/workspaces/acme/storage").json()
        assert (figures["in_trash"], figures["pending"]) == (held, 0)
        web = next(r for r in figures["repositories"] if r["slug"] == "web")
        assert web["in_trash"] == held
        assert web["image_count"] == 1  # the deleted image is not counted
        overview = c.get("/workspaces/acme/storage/overview").json()
        assert overview["storage"]["in_trash"] == held
        assert overview["gc"]["trash_retention_s"] == 3600
        impact = c.post(
            "/workspaces/acme/storage/delete-impact",
            json={"tags": [{"image_id": app_id, "tag": "mv"}], "images": []},
        ).json()
        # "held 1 hour for restore, then freed by GC"
        assert impact["trash_retention_s"] == 3600
        assert impact["freed"] == sum(b.size for b in imgs["new"].all_blobs())
    # The image that still has tags pulls as before.
    skopeo_pull(server.host, APP, "mv", imgs["new"], tmp_path / "pull")
    server.stop()
    _fsck_clean(server)


def test_expired_entries_become_pending_and_gc_frees_exactly_them(
    registry_factory: Callable[..., RegistryServer],
) -> None:
    server = registry_factory(review_delay=0, upload_grace=5, trash_retention=3)
    keep, tag_gone, image_gone = _img("keep"), _img("tag-gone", 5_000), _img("image-gone", 7_000)
    with server.client("admin") as w:
        oci.push(w, APP, keep, "keep")
        oci.push(w, APP, tag_gone, "t")
        oci.push(w, GONE, image_gone, "g")
        assert w.delete(f"/v2/{APP}/manifests/t").status_code == 202
    with api(server, "admin") as c:
        gone_id = next(
            i["id"] for i in c.get("/workspaces/acme/images").json()["items"]
            if i["full_name"] == GONE
        )  # fmt: skip
        assert c.delete(f"/images/{gone_id}", headers=as_listed(c, gone_id)).status_code == 204
    freed = sum(b.size for img in (tag_gone, image_gone) for b in img.all_blobs())
    with Metadata(server.data) as meta:
        run = meta.last_run_id()
        assert meta.totals().in_trash == freed
        # The worker expires the entries on its own and collects what they held.
        wait_until(lambda: meta.freed_since(run)[0] >= freed, "the expired trash freed")
        assert meta.freed_since(run)[0] == freed
        assert not _entries(meta)
        assert _stored(server, meta, keep)
        ws = meta.workspace_id()
        for img in (tag_gone, image_gone):
            assert not any(objects(server.data, ws, b.digest) for b in img.all_blobs())
        totals = meta.totals()
        assert (totals.in_trash, totals.pending) == (0, 0)
    server.stop()
    _fsck_clean(server)


@pytest.mark.parametrize(("retention", "span_ms"), [(None, 7 * DAY_S * 1000), (0.0, None)])
def test_retention_default_is_a_week_and_zero_turns_it_off(
    registry_factory: Callable[..., RegistryServer], retention: float | None, span_ms: Any
) -> None:
    server = registry_factory(review_delay=0, upload_grace=5, trash_retention=retention)
    img = _img("one")
    with server.client("writer") as w:
        oci.push(w, APP, img, "v1")
        assert w.delete(f"/v2/{APP}/manifests/v1").status_code == 202
    with Metadata(server.data) as meta:
        e = s.trash_entries.c
        with meta.db.read() as conn:
            spans = list(conn.execute(select(e.expires_at - e.deleted_at)).scalars())
        if span_ms is None:
            # Off: no entry, and the delete is final: GC frees the bytes.
            assert spans == []
            wait_until(lambda: not _stored(server, meta, img), "GC freed the deleted tag")
        else:
            assert spans == [span_ms]
            assert _stored(server, meta, img)


def test_a_gc_process_queues_what_expired_trash_held_with_its_review_delay(
    registry_factory: Callable[..., RegistryServer],
) -> None:
    """A standalone `gc` expires trash entries too; what they held is reviewed after
    its --gc-review-delay (the nodes' value), not always 300 s."""
    server = registry_factory(review_delay=0, upload_grace=0, trash_retention=10)
    keep, gone = _img("gc-keep"), _img("gc-gone", 4_000)
    with server.client("admin") as w:
        oci.push(w, APP, keep, "keep")
        oci.push(w, APP, gone, "gone")
        assert w.delete(f"/v2/{APP}/manifests/gone").status_code == 202
    server.stop()  # before the entry expires: the gc below is what expires it
    with Metadata(server.data) as meta, meta.db.read() as conn:
        (expires,) = conn.execute(select(s.trash_entries.c.expires_at)).scalars().all()
    wait_until(lambda: time.time() * 1000 > expires, "the trash entry expired")
    result = admin(server.data, "gc", "--once", "--gc-review-delay", "0", "--gc-upload-grace", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 manifests and 2 blobs deleted" in result.stdout
    with Metadata(server.data) as meta:
        assert not _entries(meta)
        ws = meta.workspace_id()
        assert not any(objects(server.data, ws, b.digest) for b in gone.all_blobs())
        assert _stored(server, meta, keep)
        assert meta.totals().pending == 0
    _fsck_clean(server)
