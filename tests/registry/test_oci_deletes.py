"""Which deletes a writer may make over /v2/ (DESIGN.md, "Deletes over OCI"): a tag,
and a manifest by digest with every tag on it (what skopeo, crane and oras send),
each needing write and a token holding ``delete``; a blob only while no manifest of
the image uses it (unlinking a layer or config in use would break pulls, and nothing
could bring it back). Deleting the image as a whole is admin only, in the management
API. Every delete is audited with who made it."""

from __future__ import annotations

import httpx

from tests.registry.oci_helpers import assert_error, upload
from tests.support import oci
from tests.support.api import api
from tests.support.registry import PASSWORD, RegistryServer

NAME = "acme/web/app"


def token(server: RegistryServer, user: str, actions: str) -> httpx.Client:
    r = httpx.get(
        f"{server.url}/auth/token",
        params={"service": "berth-registry", "scope": f"repository:{NAME}:{actions}"},
        auth=(user, PASSWORD),
    )
    assert r.status_code == 200, r.text
    return server.client(headers={"Authorization": f"Bearer {r.json()['token']}"})


def test_what_a_writer_may_delete_over_oci(registry: RegistryServer) -> None:
    one = oci.image([oci.layer({"one": b"1"})])
    two = oci.image([oci.layer({"two": b"2"})])
    kept = oci.image([oci.layer({"kept": b"k"})])
    with registry.client("writer") as w:
        oci.push(w, NAME, one, "v1")
        oci.push(w, NAME, one, "stable")
        oci.push(w, NAME, two, "v2")
        oci.push(w, NAME, kept, "v3")
        # A tag: that one tag goes, its manifest stays (by digest) for GC to review.
        assert w.delete(f"/v2/{NAME}/manifests/v2").status_code == 202
        assert_error(w.get(f"/v2/{NAME}/manifests/v2"), 404, "MANIFEST_UNKNOWN")
        assert w.get(f"/v2/{NAME}/manifests/{two.digest}").status_code == 200
        # A manifest by digest: it and every tag on it.
        assert w.delete(f"/v2/{NAME}/manifests/{one.digest}").status_code == 202
        for tag in ("v1", "stable"):
            assert_error(w.get(f"/v2/{NAME}/manifests/{tag}"), 404, "MANIFEST_UNKNOWN")
        # A layer or config a manifest still uses: refused, and the image still pulls.
        for blob in kept.blobs:
            r = w.delete(f"/v2/{NAME}/blobs/{blob.digest}")
            assert_error(r, 409, "DENIED")
            assert kept.digest in r.json()["errors"][0]["message"]
            assert w.get(f"/v2/{NAME}/blobs/{blob.digest}").content == blob.data
        # A blob nothing uses (an upload never pushed a manifest for): unlinked.
        loose = upload(w, NAME, b"loose bytes")
        assert w.delete(f"/v2/{NAME}/blobs/{loose}").status_code == 202
        assert_error(w.head(f"/v2/{NAME}/blobs/{loose}"), 404, "BLOB_UNKNOWN")
    # The same refusal for an admin: it is about pulls, not permissions.
    with registry.client("admin") as a:
        assert_error(a.delete(f"/v2/{NAME}/blobs/{kept.blobs[1].digest}"), 409, "DENIED")
    # Readers delete nothing; a writer's token must hold "delete", not only "push".
    with registry.client("reader") as r:
        assert_error(r.delete(f"/v2/{NAME}/manifests/v3"), 403, "DENIED")
    with token(registry, "writer", "pull,push") as t:
        assert_error(t.delete(f"/v2/{NAME}/manifests/v3"), 401, "UNAUTHORIZED")
    with token(registry, "writer", "pull,push,delete") as t:
        assert t.delete(f"/v2/{NAME}/manifests/v3").status_code == 202
    # Who deleted what, for the workspace's admins.
    with api(registry, "wsadmin") as c:
        entries = c.get("/workspaces/acme/audit").json()["items"]
    seen = {(e["action"], e["target"], e["actor"]) for e in entries}
    assert ("tag.delete", f"{NAME}:v2", "writer") in seen
    assert ("manifest.delete", f"{NAME}@{one.digest}", "writer") in seen
    assert ("tag.delete", f"{NAME}:v3", "writer") in seen
