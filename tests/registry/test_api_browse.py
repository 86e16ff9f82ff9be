"""Browsing through the management API of a real registry process: workspaces,
projects, repositories, images, tags and manifests, with filters, sorts and cursors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import oci
from tests.support.api import Content, api, push_content
from tests.support.registry import RegistryServer


@pytest.fixture
def content(registry: RegistryServer) -> Content:
    return push_content(registry)


def walk(client: httpx.Client, path: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every item of a list, page by page."""
    cursor = None
    while True:
        r = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        yield from body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return


def image_sizes(content: Content, name: str) -> tuple[int, int]:
    """(size, exclusive size) of an image, from the blobs the test pushed."""
    mine: dict[str, int] = {}
    for image in content.tagged[name].values():
        mine.update({b.digest: b.size for b in image.all_blobs()})
    ws = name.split("/")[0]
    others: set[str] = set()
    for other, tags in content.tagged.items():
        if other != name and other.startswith(ws + "/"):
            for image in tags.values():
                others |= {b.digest for b in image.all_blobs()}
    return sum(mine.values()), sum(size for d, size in mine.items() if d not in others)


def test_me_and_workspaces_show_what_each_user_may_see(
    registry: RegistryServer, content: Content
) -> None:
    with api(registry) as c:
        me = c.get("/me").json()
        assert me["user"] == {"name": "root", "superuser": True}
        assert [(w["slug"], w["role"]) for w in me["workspaces"]] == [
            ("acme", "admin"),
            ("globex", "admin"),
        ]
        acme = c.get("/workspaces/acme").json()
        assert acme == {
            "slug": "acme",
            "name": "acme",
            "role": "admin",
            "project_count": 1,
            "repository_count": 2,
            "image_count": 3,
        }
    with api(registry, "reader") as c:
        assert [(w["slug"], w["role"]) for w in c.get("/me").json()["workspaces"]] == [
            ("acme", "member")
        ]
        listed = c.get("/workspaces").json()
        assert listed["total"] == 1
        # A reader of acme/web counts only what it may read.
        assert listed["items"][0]["repository_count"] == 1
        assert listed["items"][0]["image_count"] == 2
        assert c.get("/workspaces/globex").status_code == 404
    with api(registry, "outsider") as c:
        assert [w["slug"] for w in c.get("/workspaces").json()["items"]] == ["globex"]
        r = c.get("/workspaces/acme")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "NOT_FOUND"


def test_projects_and_repositories_with_counts_and_permission(
    registry: RegistryServer, content: Content
) -> None:
    with api(registry, "wsadmin") as c:
        projects = c.get("/workspaces/acme/projects").json()
        assert projects["items"] == [
            {"key": "PLAT", "name": "PLAT", "repository_count": 2, "image_count": 3}
        ]
        repos = c.get("/workspaces/acme/repositories").json()["items"]
        web = next(r for r in repos if r["slug"] == "web")
        assert [r["slug"] for r in repos] == ["api", "web"]
        assert web["permission"] == "admin"
        assert web["image_count"] == 2
        assert web["tag_count"] == 4
        blobs: dict[str, int] = {}
        for name in ("acme/web/frontend", "acme/web/backend"):
            for image in content.tagged[name].values():
                blobs.update({b.digest: b.size for b in image.all_blobs()})
        assert web["size"] == sum(blobs.values())
        assert c.get("/workspaces/acme/repositories", params={"project": "NOPE"}).status_code == 404
    for user, permission in (("reader", "read"), ("writer", "write"), ("admin", "admin")):
        with api(registry, user) as c:
            repos = c.get("/workspaces/acme/repositories").json()["items"]
            assert [(r["slug"], r["permission"]) for r in repos] == [("web", permission)]


def test_images_sizes_sorts_filters_and_cursors(registry: RegistryServer, content: Content) -> None:
    with api(registry) as c:
        items = c.get("/workspaces/acme/images").json()["items"]
        assert [i["full_name"] for i in items] == [
            "acme/web/backend",
            "acme/web/frontend",
            "acme/api/worker",
        ]
        for item in items:
            size, exclusive = image_sizes(content, item["full_name"])
            assert (item["size"], item["exclusive_size"]) == (size, exclusive), item["full_name"]
            assert item["tag_count"] == len(content.tagged[item["full_name"]])
            assert item["last_push"].endswith("Z")
        for field in ("name", "tag_count", "size", "last_push"):
            for descending in (False, True):
                sort = ("-" if descending else "") + field
                paged = list(walk(c, "/workspaces/acme/images", sort=sort, limit=1))
                key = [(i[field], i["id"]) for i in paged]
                assert key == sorted(key, reverse=descending), sort
                assert sorted(i["id"] for i in paged) == sorted(i["id"] for i in items)
        web = c.get("/workspaces/acme/images", params={"repository": "web"}).json()
        assert web["total"] == 2
        found = c.get("/workspaces/acme/images", params={"q": "FRONT"}).json()["items"]
        assert [i["name"] for i in found] == ["frontend"]
        assert c.get("/workspaces/acme/images", params={"q": "%"}).json()["total"] == 0
        assert c.get("/workspaces/acme/images", params={"project": "PLAT"}).json()["total"] == 3
        assert c.get("/workspaces/acme/images", params={"repository": "x"}).status_code == 404
        bad = c.get("/workspaces/acme/images", params={"sort": "colour"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "INVALID_ARGUMENT"
        first = c.get("/workspaces/acme/images", params={"limit": 1}).json()
        other_sort = c.get(
            "/workspaces/acme/images", params={"sort": "size", "cursor": first["next_cursor"]}
        )
        assert other_sort.status_code == 400
        assert (
            c.get("/workspaces/acme/images", params={"cursor": "not-a-cursor"}).status_code == 400
        )
        detail = c.get(f"/images/{content.ids['acme/web/frontend']}").json()
        assert detail["workspace"] == "acme"
        assert detail["permission"] == "admin"
        assert detail["size"] == image_sizes(content, "acme/web/frontend")[0]
        assert c.get("/images/999999").status_code == 404
    with api(registry, "reader") as c:
        assert [i["name"] for i in c.get("/workspaces/acme/images").json()["items"]] == [
            "backend",
            "frontend",
        ]
        assert c.get(f"/images/{content.ids['acme/api/worker']}").status_code == 404
        assert c.get("/workspaces/acme/images", params={"repository": "api"}).status_code == 404


def test_tags_rows_other_tags_and_platforms(registry: RegistryServer, content: Content) -> None:
    fe = content.ids["acme/web/frontend"]
    with api(registry) as c:
        tags = {t["name"]: t for t in c.get(f"/images/{fe}/tags").json()["items"]}
        assert list(tags) == ["latest", "v1", "v2"]
        v2 = content.tagged["acme/web/frontend"]["v2"]
        assert tags["v2"]["digest"] == v2.digest
        assert tags["v2"]["media_type"] == oci.OCI_MANIFEST
        assert tags["v2"]["size"] == v2.compressed_size
        assert tags["v2"]["platforms"] == ["linux/amd64"]
        assert tags["v2"]["created"] == "2026-03-04T05:06:07.123Z"
        assert tags["v2"]["other_tags"] == ["latest"]
        assert tags["v2"]["other_tag_count"] == 1
        assert tags["v1"]["other_tags"] == []
        worker = {
            t["name"]: t
            for t in c.get(f"/images/{content.ids['acme/api/worker']}/tags").json()["items"]
        }
        assert worker["multi"]["media_type"] == oci.OCI_INDEX
        assert worker["multi"]["platforms"] == ["linux/amd64", "linux/arm64"]
        index = content.tagged["acme/api/worker"]["multi"]
        assert worker["multi"]["size"] == index.manifest.size + sum(
            child.compressed_size for child in index.children
        )


def test_other_tags_of_a_manifest_held_by_more_than_its_tags(registry: RegistryServer) -> None:
    """A tagged child of a tagged index, and a tagged referrer of a tagged subject, are
    held by more than their one tag: still no other tags; a second tag shows."""
    layers = [oci.random_layer(900, f"held{i}") for i in range(2)]
    amd, arm = (oci.image([layers[i]], arch=a) for i, a in enumerate(("amd64", "arm64")))
    multi = oci.index([amd, arm])
    sig = oci.image([layers[0]], subject=amd.manifest, artifact_type="application/x-sig")
    name = "acme/web/held"
    with registry.client("root") as oc:
        for img, tag in ((multi, "multi"), (amd, "amd"), (sig, "sig"), (sig, "sig2")):
            assert oci.push(oc, name, img, tag).status_code == 201
        with api(registry) as c:
            found = c.get("/workspaces/acme/images", params={"q": "held"}).json()["items"]
            rows = {t["name"]: t for t in c.get(f"/images/{found[0]['id']}/tags").json()["items"]}
    assert {n: (r["other_tags"], r["other_tag_count"]) for n, r in rows.items()} == {
        "amd": ([], 0),
        "multi": ([], 0),
        "sig": (["sig2"], 1),
        "sig2": (["sig"], 1),
    }


def test_tag_pagination_is_ordered_complete_and_stable_under_inserts(
    registry: RegistryServer,
) -> None:
    images = [oci.image([oci.random_layer(1000, f"p{i}")], label=str(i)) for i in range(5)]
    name = "acme/web/many"
    with registry.client("root") as oc:
        for n in range(230):
            oci.push(oc, name, images[n % 5], f"t{n:03d}")
        with api(registry) as c:
            image_id = c.get("/workspaces/acme/images", params={"q": "many"}).json()["items"][0][
                "id"
            ]
            for sort in ("name", "-name", "pushed_at", "-pushed_at", "size", "-size", "created"):
                seen = list(walk(c, f"/images/{image_id}/tags", sort=sort, limit=47))
                assert len(seen) == 230
                assert len({t["name"] for t in seen}) == 230
                field = sort.lstrip("-")
                values = [t[field] for t in seen]
                assert values == sorted(values, reverse=sort.startswith("-")), sort
            first = c.get(f"/images/{image_id}/tags", params={"limit": 100}).json()
            assert first["total"] == 230
            assert first["items"][0]["other_tag_count"] == 45
            assert len(first["items"][0]["other_tags"]) == 20
            # New tags sorting before the cursor do not shift the next page.
            for n in range(5):
                oci.push(oc, name, images[0], f"a{n}")
            rest = c.get(
                f"/images/{image_id}/tags", params={"limit": 1000, "cursor": first["next_cursor"]}
            ).json()
            names = [t["name"] for t in first["items"]] + [t["name"] for t in rest["items"]]
            assert names == [f"t{n:03d}" for n in range(230)]
            assert rest["total"] == 235
            filtered = c.get(f"/images/{image_id}/tags", params={"q": "t10"}).json()
            assert [t["name"] for t in filtered["items"]] == [f"t10{n}" for n in range(10)]


def test_manifest_detail_layers_children_and_referrers(
    registry: RegistryServer, content: Content
) -> None:
    worker = content.ids["acme/api/worker"]
    index = content.tagged["acme/api/worker"]["multi"]
    amd = index.children[0]
    sbom = oci.image(
        [oci.Blob(b'{"sbom": true}', "application/spdx+json")],
        subject=amd.manifest,
        artifact_type="application/spdx+json",
        config_blob=oci.Blob(b"{}", "application/vnd.oci.empty.v1+json"),
    )
    with registry.client("root") as oc:
        oci.push(oc, "acme/api/worker", sbom)
    with api(registry) as c:
        detail = c.get(f"/images/{worker}/manifests/{index.digest}").json()
        assert detail["media_type"] == oci.OCI_INDEX
        assert detail["tags"] == ["multi"]
        assert detail["config"] is None
        assert [(m["digest"], m["platform"]) for m in detail["manifests"]] == [
            (amd.digest, "linux/amd64"),
            (index.children[1].digest, "linux/arm64"),
        ]
        assert detail["manifests"][0]["size"] == amd.compressed_size
        child = c.get(f"/images/{worker}/manifests/{amd.digest}").json()
        assert child["tags"] == ["1.0"]
        assert child["config"] == {"digest": amd.blobs[0].digest, "size": amd.blobs[0].size}
        layers = {layer["digest"]: layer for layer in child["layers"]}
        # The base layer is reached by all three acme images; globex has its own copy.
        assert layers[content.base.digest]["image_count"] == 3  # type: ignore[union-attr]
        assert layers[amd.blobs[2].digest]["image_count"] == 1
        assert child["referrers"] == [
            {
                "digest": sbom.digest,
                "artifact_type": "application/spdx+json",
                "size": sbom.compressed_size,
            }
        ]
        referrer = c.get(f"/images/{worker}/manifests/{sbom.digest}").json()
        assert referrer["subject"] == amd.digest
        missing = c.get(f"/images/{worker}/manifests/sha256:{'0' * 64}")
        assert missing.status_code == 404
        assert missing.json()["error"]["detail"] == {"digest": f"sha256:{'0' * 64}"}


def test_authentication_errors_and_bearer_tokens(registry: RegistryServer) -> None:
    with api(registry, None) as c:
        r = c.get("/me")
        assert r.status_code == 401
        assert r.json() == {
            "error": {"code": "UNAUTHORIZED", "message": "authentication required", "detail": None}
        }
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith("Bearer realm=")
        assert 'scope="api:berth:*"' in challenge
        bad = c.get("/me", auth=httpx.BasicAuth("root", "wrong-password"))
        assert bad.status_code == 401
        assert bad.json()["error"]["message"] == "invalid credentials"
    with registry.client("reader") as oc:
        plain = oc.get("/auth/token", params={"service": "berth-registry"}).json()["token"]
        scoped = oc.get(
            "/auth/token", params={"service": "berth-registry", "scope": "api:berth:*"}
        ).json()["token"]
    with api(registry, None) as c:
        denied = c.get("/me", headers={"Authorization": f"Bearer {plain}"})
        assert denied.status_code == 401
        assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
        ok = c.get("/me", headers={"Authorization": f"Bearer {scoped}"})
        assert ok.status_code == 200
        assert ok.json()["user"]["name"] == "reader"


def test_unknown_paths_and_methods_answer_in_the_error_shape(registry: RegistryServer) -> None:
    with api(registry) as c:
        r = c.get("/no-such-thing")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "NOT_FOUND"
        r = c.put("/me")
        assert r.status_code == 405
        assert "GET" in r.headers["allow"]
        body = json.loads(r.text)
        assert body["error"]["code"] == "METHOD_NOT_ALLOWED"
