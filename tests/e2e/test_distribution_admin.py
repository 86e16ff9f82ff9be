"""Administering a real CNCF Distribution 2.8 registry (Debian's docker-registry)
over TLS with htpasswd Basic auth, through Berth's generic OCI client: browse,
measure, delete a shared tag safely, delete images, and check against the disk
after ``docker-registry garbage-collect`` that the client predicted the bytes
freed."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import defaultdict
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from app.client import capabilities as caps
from app.client.errors import Conflict, DeletesDisabled, TagDeleteUnsupported
from app.client.oci import OciClient
from app.client.oci_delete import (
    delete_digest,
    delete_image,
    delete_tag,
    delete_tag_with_placeholder,
)
from app.client.oci_details import DetailsLoader
from app.client.scan import RegistryScan, ScanProgress, scan_registry
from app.client.transport import ConnectionSettings
from tests.support import oci
from tests.support.distribution import PASSWORD, USER, DistributionServer, push_image
from tests.support.tools import require

pytestmark = pytest.mark.e2e
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


# --- content: three repositories that share a base layer; tags that share digests --
BASE = oci.random_layer(150_000, "base")
APP1 = oci.image([BASE, oci.random_layer(40_000, "app1")], created="2026-03-01T10:00:00Z")
APP2 = oci.image([BASE, oci.random_layer(45_000, "app2")], created="2026-03-02T10:00:00Z")
WORKER = oci.image([BASE, oci.random_layer(30_000, "worker")], created="2026-03-03T10:00:00Z")
AMD = oci.image([oci.random_layer(20_000, "multi-common"), oci.random_layer(10_000, "amd")])
ARM = oci.image(
    [oci.random_layer(20_000, "multi-common"), oci.random_layer(11_000, "arm")], arch="arm64"
)
MULTI = oci.index([AMD, ARM])

PUSHED: dict[str, dict[str, oci.Image]] = {
    "team/app": {"v1": APP1, "latest": APP1, "v2": APP2},
    "team/worker": {"1.0": WORKER, "1.1": WORKER},
    "tools/multi": {"1": MULTI},
}


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("skopeo"), *args], capture_output=True, text=True, check=False)


def push_all(server: DistributionServer, tmp_path: Path) -> None:
    for repository, tags in PUSHED.items():
        layout = oci.write_layout(tmp_path / "layouts" / repository.replace("/", "_"), tags)
        for tag in tags:
            result = skopeo(
                "copy",
                "--quiet",
                "--all",
                *server.skopeo_tls_args("dest"),
                f"oci:{layout}:{tag}",
                f"docker://{server.host}/{repository}:{tag}",
            )
            assert result.returncode == 0, result.stderr


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[DistributionServer]:
    server = DistributionServer(tmp_path / "dist").start()
    try:
        push_all(server, tmp_path)
        yield server
    finally:
        server.stop()


def connect(server: DistributionServer) -> OciClient:
    assert server.ca_file is not None
    return OciClient.connect(
        ConnectionSettings(server.url, ca_bundle=server.ca_file), USER, PASSWORD
    )


def expected_figures() -> tuple[dict[str, int], dict[str, int], int, int]:
    """Computed from what the test pushed, not by the client: per-image exclusive
    bytes, per-image reachable bytes, referenced and shared bytes."""
    per_image: dict[str, dict[str, int]] = {}
    for repository, tags in PUSHED.items():
        blobs: dict[str, int] = {}
        for img in tags.values():
            blobs.update(img.reachable())
        per_image[repository] = blobs
    users: dict[str, set[str]] = defaultdict(set)
    sizes: dict[str, int] = {}
    for repository, blobs in per_image.items():
        for digest, size in blobs.items():
            users[digest].add(repository)
            sizes[digest] = size
    exclusive = {
        r: sum(s for d, s in blobs.items() if len(users[d]) == 1) for r, blobs in per_image.items()
    }
    totals = {r: sum(blobs.values()) for r, blobs in per_image.items()}
    shared = sum(sizes[d] for d, u in users.items() if len(u) >= 2)
    return exclusive, totals, sum(sizes.values()), shared


def test_browse_details_capabilities_and_storage(distribution: DistributionServer) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with connect(distribution) as client:
            first = await client.catalog_page(1)
            everything = await client.all_repositories(page_size=1)
            tags = await client.all_tags("team/app")
            found = await caps.capabilities(client)
            loader = DetailsLoader(client)
            rows = [row async for row in loader.iter_tags("team/app", tags)]
            multi = await loader.tag("tools/multi", "1")
            seen: list[ScanProgress] = []
            scan = await scan_registry(client, loader=loader, progress=seen.append)
            return first, everything, tags, found, rows, multi, seen, scan

    first, everything, tags, found, rows, multi, seen, scan = run(scenario())
    assert first.items == ["team/app"]
    assert first.next_url is not None
    assert everything == ["team/app", "team/worker", "tools/multi"]
    assert sorted(tags) == ["latest", "v1", "v2"]

    assert found.catalog
    assert found.deletes is True
    assert found.tag_delete is False
    assert found.referrers is False
    assert any("only by digest" in n for n in found.notes)

    by_tag = {r.tag: r.details for r in rows}
    assert by_tag["v1"] is by_tag["latest"]  # one digest, fetched and described once
    v1 = by_tag["v1"]
    assert v1 is not None
    assert v1.digest == APP1.digest
    assert v1.size == sum(APP1.reachable().values())
    assert v1.platforms == ("linux/amd64",)
    assert v1.created == "2026-03-01T10:00:00Z"
    assert [layer.digest for layer in v1.layers] == [b.digest for b in APP1.blobs[1:]]
    assert multi.is_index
    assert multi.size == sum(MULTI.reachable().values())
    assert multi.platforms == ("linux/amd64", "linux/arm64")

    assert isinstance(scan, RegistryScan)
    assert not scan.errors
    assert seen[-1].tags_done == seen[-1].tags_total == 6
    storage = scan.storage()
    exclusive, totals, referenced, shared = expected_figures()
    assert storage.referenced == referenced
    assert storage.shared == shared == BASE.size
    assert {i: u.exclusive for i, u in storage.images.items()} == exclusive
    assert {i: u.exclusive + u.shared for i, u in storage.images.items()} == totals
    assert [layer.digest for layer in storage.shared_layers] == [BASE.digest]
    assert storage.pending is None
    assert storage.stored is None
    assert "garbage-collect" in storage.pending_explanation
    # Everything pushed is referenced, so the disk holds exactly that.
    assert sum(distribution.blob_bytes().values()) == referenced
    assert scan.other_tags("team/app", "v1") == ["latest"]
    assert scan.plan_tag_delete("team/app", "v1").recommended == "placeholder"
    assert scan.plan_tag_delete("team/app", "v2").recommended == "digest"


def test_safe_tag_delete_image_delete_and_gc_frees_what_was_predicted(
    distribution: DistributionServer, tmp_path: Path
) -> None:
    async def scenario() -> tuple[Any, ...]:
        async with connect(distribution) as client:
            scan = await scan_registry(client)
            impact = scan.delete_impact(
                tags=[("team/app", "v1")], images=["team/worker", "tools/multi"]
            )
            # The OCI tag delete is refused by Distribution 2.8; nothing goes.
            with pytest.raises(TagDeleteUnsupported, match="only by digest"):
                await delete_tag(client, "team/app", "v1", expected_digest=APP1.digest)
            # A confirmation that no longer matches the registry deletes nothing.
            with pytest.raises(Conflict, match="nothing was deleted"):
                await delete_tag_with_placeholder(
                    client, "team/app", "v1", expected_digest=APP2.digest
                )
            assert sorted(await client.all_tags("team/app")) == ["latest", "v1", "v2"]

            placeholder = await delete_tag_with_placeholder(
                client, "team/app", "v1", expected_digest=APP1.digest
            )
            progress: list[tuple[int, int]] = []
            results = [
                await delete_image(
                    client,
                    name,
                    scan.image_digests(name),
                    progress=lambda d, t: progress.append((d, t)),
                )
                for name in ("team/worker", "tools/multi")
            ]
            after = await scan_registry(client)
            return scan, impact, placeholder, results, progress, after

    initial = sum(distribution.blob_bytes().values())
    _scan, impact, placeholder, results, progress, after = run(scenario())
    assert placeholder.placeholder_digest not in (APP1.digest, APP2.digest)
    assert all(r.complete and not r.missing for r in results)
    assert results[1].deleted == [MULTI.digest, AMD.digest, ARM.digest]
    assert progress[-1] == (3, 3)
    assert after.tags == {
        ("team/app", "latest"): APP1.digest,
        ("team/app", "v2"): APP2.digest,
    }

    # The other tag on the digest still pulls, byte for byte.
    out = tmp_path / "pulled"
    pulled = skopeo(
        "copy",
        "--quiet",
        *distribution.skopeo_tls_args("src"),
        f"docker://{distribution.host}/team/app:latest",
        f"oci:{out}:latest",
    )
    assert pulled.returncode == 0, pulled.stderr
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == APP1.digest
    gone = skopeo(
        "inspect", *distribution.skopeo_tls_args(None), f"docker://{distribution.host}/team/app:v1"
    )
    assert gone.returncode != 0

    # Predicted independently: v1 frees nothing (latest keeps it); the worker frees
    # its own layer, config and manifest; multi frees everything it reaches.
    exclusive, _totals, _referenced, _shared = expected_figures()
    assert impact.freed == exclusive["team/worker"] + exclusive["tools/multi"]
    # Kept: all of v1 (latest still names it), which includes the worker's base layer.
    assert impact.kept == sum(APP1.reachable().values())

    # The placeholder (its manifest and the 2-byte empty config) is garbage now too.
    held = distribution.blob_bytes()
    assert held[placeholder.placeholder_digest] == placeholder.placeholder_size
    distribution.stop()
    distribution.garbage_collect()
    after_gc = distribution.blob_bytes()
    assert placeholder.placeholder_digest not in after_gc
    assert initial - sum(after_gc.values()) == impact.freed


def test_deletes_disabled_is_said_plainly_and_deletes_nothing(tmp_path: Path) -> None:
    server = DistributionServer(tmp_path / "ro", delete_enabled=False).start()
    try:
        push_all_one(server)

        async def scenario() -> tuple[Any, ...]:
            async with connect(server) as client:
                found = await caps.capabilities(client)
                with pytest.raises(DeletesDisabled, match="deletes turned off"):
                    await delete_digest(client, "team/app", APP1.digest)
                with pytest.raises(DeletesDisabled, match="Nothing was deleted"):
                    await delete_tag_with_placeholder(
                        client, "team/app", "v1", expected_digest=APP1.digest
                    )
                return found, await client.head_manifest("team/app", "v1")

        found, ref = run(scenario())
        assert found.deletes is False
        assert any("turned off" in n for n in found.notes)
        assert ref.digest == APP1.digest
    finally:
        server.stop()


def push_all_one(server: DistributionServer) -> None:
    with server.http_client() as http:
        push_image(http, "team/app", APP1, "v1")
