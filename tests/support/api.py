"""Management-API helpers for tests: a client per user, and a small known content set
pushed over the OCI API whose storage figures tests recompute on their own."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from tests.support import oci
from tests.support.registry import PASSWORD, RegistryServer


def api(server: RegistryServer, user: str | None = "root") -> httpx.Client:
    auth = httpx.BasicAuth(user, PASSWORD) if user else None
    return httpx.Client(base_url=server.url + "/api/v1", auth=auth, timeout=30)


@dataclass
class Content:
    """What :func:`push_content` pushed: image name -> tag -> OCI image, plus ids."""

    tagged: dict[str, dict[str, oci.Image]] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)  # full image name -> API id
    base: oci.Blob | None = None

    def blobs_of(self, name: str, tag: str) -> dict[str, int]:
        return {b.digest: b.size for b in self.tagged[name][tag].all_blobs()}


def push_content(server: RegistryServer, layer_size: int = 20_000) -> Content:
    """acme/web/frontend (v1, v2, latest = v2), acme/web/backend (v1),
    acme/api/worker (1.0, and an index ``multi`` over two platforms),
    globex/tools/cli (v1). One base layer is in every image; each image also has its
    own layers, and frontend v1/v2 differ in one layer."""
    base = oci.random_layer(layer_size, "base")
    own = {n: oci.random_layer(layer_size, n) for n in ("fe1", "fe2", "be", "wk", "cli")}
    content = Content(base=base)

    def img(layers: list[oci.Blob], label: str, arch: str = "amd64") -> oci.Image:
        return oci.image(layers, label=label, arch=arch, created="2026-03-04T05:06:07.123456789Z")

    v2 = img([base, own["fe2"]], "fe2")
    amd = img([base, own["wk"]], "wk-amd")
    arm = img([base, own["wk"], oci.random_layer(layer_size, "arm")], "wk-arm", "arm64")
    content.tagged = {
        "acme/web/frontend": {"v1": img([base, own["fe1"]], "fe1"), "v2": v2, "latest": v2},
        "acme/web/backend": {"v1": img([base, own["be"]], "be")},
        "acme/api/worker": {"1.0": amd, "multi": oci.index([amd, arm])},
        "globex/tools/cli": {"v1": img([base, own["cli"]], "cli")},
    }
    with server.client("root") as c:
        for name, tags in content.tagged.items():
            for tag, image in tags.items():
                oci.push(c, name, image, tag)
    with api(server) as c:
        for ws in ("acme", "globex"):
            for item in c.get(f"/workspaces/{ws}/images").json()["items"]:
                content.ids[item["full_name"]] = item["id"]
    return content


def as_listed(c: httpx.Client, image_id: int) -> dict[str, str]:
    """The If-Match header a delete through ``image_id`` sends: the image's ETag, as
    ``GET /images/{id}`` answers it now (what a client got from its listing)."""
    r = c.get(f"/images/{image_id}")
    assert r.status_code == 200, r.text
    return {"If-Match": r.headers["ETag"]}
