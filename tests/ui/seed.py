"""Seeding a real registry with images and tags for the UI tests (over HTTP)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support import oci
from tests.support.registry import RegistryServer


def seed_image(
    server: RegistryServer,
    name: str,
    tags: list[str],
    *,
    variants: int = 1,
    shared: oci.Blob | None = None,
    layer_size: int = 2048,
    user: str = "root",
) -> list[oci.Image]:
    """Push ``variants`` distinct manifests of ``name`` and spread ``tags`` over
    them (tag i on variant i % variants). ``shared`` is a layer every variant
    carries (share it between images to see sharing)."""
    base = shared or oci.random_layer(layer_size, seed=name)
    images = [
        oci.image([base, oci.random_layer(512, seed=f"{name}-{i}")], label=f"{name}-{i}")
        for i in range(variants)
    ]
    with server.client(user) as client:
        for img in images:
            oci.push(client, name, img)

        def tag_one(i: int) -> None:
            img = images[i % variants]
            r = client.put(
                f"/v2/{name}/manifests/{tags[i]}",
                content=img.manifest.data,
                headers={"Content-Type": img.manifest.media_type},
            )
            assert r.status_code == 201, r.text

        # Several at once: seeding a thousand tags one by one dominates a test's time.
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(tag_one, range(len(tags))))
    return images


def server_tags(server: RegistryServer, name: str) -> set[str]:
    """The tags the registry itself reports (the OCI tag list, all pages)."""
    out: set[str] = set()
    with server.client("root") as client:
        url: str | None = f"/v2/{name}/tags/list?n=1000"
        while url:
            r = client.get(url)
            if r.status_code == 404:
                return out
            assert r.status_code == 200, r.text
            out.update(r.json().get("tags") or [])
            link = r.headers.get("link")
            url = link.split(";")[0].strip("<> ") if link else None
    return out
