"""skopeo pushes real images into the registry and pulls them back byte-identical:
with HTTP Basic and through the token flow, a multi-arch index with ``--all``, and
layers shared between images stored once per workspace (never across workspaces)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import oci
from tests.support.registry import PASSWORD, RegistryServer
from tests.support.tools import require

pytestmark = pytest.mark.e2e


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("skopeo"), *args], capture_output=True, text=True, check=False, timeout=300
    )


def push(layout: Path, tag: str, registry: RegistryServer, name: str, *extra: str) -> None:
    result = skopeo(
        "copy",
        "--quiet",
        *extra,
        "--dest-tls-verify=false",
        "--dest-creds",
        f"wsadmin:{PASSWORD}",
        f"oci:{layout}:{tag}",
        f"docker://{registry.host}/{name}:{tag}",
    )
    assert result.returncode == 0, result.stderr


def pull(registry: RegistryServer, name: str, tag: str, out: Path, *extra: str) -> None:
    result = skopeo(
        "copy",
        "--quiet",
        *extra,
        "--src-tls-verify=false",
        "--src-creds",
        f"wsadmin:{PASSWORD}",
        f"docker://{registry.host}/{name}:{tag}",
        f"oci:{out}:{tag}",
    )
    assert result.returncode == 0, result.stderr


def layout_blobs(root: Path) -> dict[str, bytes]:
    return {f"sha256:{p.name}": p.read_bytes() for p in (root / "blobs" / "sha256").iterdir()}


def assert_identical(pulled: Path, img: oci.Image) -> None:
    """Every manifest and blob of ``img`` came back byte for byte, under its digest."""
    blobs = layout_blobs(pulled)
    for blob in [img.manifest, *img.all_blobs(), *(c.manifest for c in img.children)]:
        assert blobs[blob.digest] == blob.data
    index = json.loads((pulled / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [img.digest]


def stored_objects(registry: RegistryServer, digest: str) -> list[Path]:
    """The blob store's objects for ``digest``, in every workspace."""
    hexpart = digest.split(":", 1)[1]
    return sorted((registry.data / "blobs").glob(f"*/sha256/{hexpart[:2]}/{hexpart}/*"))


@pytest.mark.parametrize("challenge", ["basic", "bearer"])
def test_push_and_pull_byte_identical(
    registry_factory: Any, tmp_path: Path, challenge: str
) -> None:
    registry: RegistryServer = registry_factory(extra_args=["--auth-challenge", challenge])
    offered = httpx.get(f"{registry.url}/v2/").headers["WWW-Authenticate"]
    # skopeo answers the scheme offered: Basic on every request, or the token flow.
    assert offered.startswith("Basic " if challenge == "basic" else "Bearer realm=")
    layers = [oci.random_layer(300_000 + i * 7919, f"{challenge}{i}") for i in range(4)]
    img = oci.image(layers)
    src = oci.write_layout(tmp_path / "src", {"v1": img})
    push(src, "v1", registry, "acme/web/app")
    out = tmp_path / "out"
    pull(registry, "acme/web/app", "v1", out)
    assert_identical(out, img)


def test_shared_layers_are_stored_once_per_workspace(
    registry: RegistryServer, tmp_path: Path
) -> None:
    shared = oci.random_layer(400_000, "shared")
    first = oci.image([shared, oci.random_layer(100_000, "first")])
    second = oci.image([oci.random_layer(100_000, "second"), shared])
    src = oci.write_layout(tmp_path / "src", {"first": first, "second": second})
    push(src, "first", registry, "acme/web/first")
    push(src, "second", registry, "acme/api/second")  # another repository, same workspace
    objects = stored_objects(registry, shared.digest)
    assert len(objects) == 1
    assert objects[0].read_bytes() == shared.data
    for name, tag, img in (
        ("acme/web/first", "first", first),
        ("acme/api/second", "second", second),
    ):
        out = tmp_path / f"out-{tag}"
        pull(registry, name, tag, out)
        assert_identical(out, img)
    # Another workspace never shares: it holds its own copy.
    result = skopeo(
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"outsider:{PASSWORD}",
        f"oci:{src}:first",
        f"docker://{registry.host}/globex/tools/first:first",
    )
    assert result.returncode == 0, result.stderr
    objects = stored_objects(registry, shared.digest)
    assert len(objects) == 2
    assert len({p.parts[-5] for p in objects}) == 2  # one per workspace directory


def test_multi_arch_index_round_trips_with_all(registry: RegistryServer, tmp_path: Path) -> None:
    children = [
        oci.image(
            [oci.random_layer(150_000, f"{arch}-base"), oci.layer({"arch": arch.encode()})],
            arch=arch,
        )
        for arch in ("amd64", "arm64")
    ]
    idx = oci.index(children)
    src = oci.write_layout(tmp_path / "src", {"multi": idx})
    push(src, "multi", registry, "acme/web/multi", "--all")
    with registry.client("wsadmin") as client:
        r = client.get("/v2/acme/web/multi/manifests/multi", headers={"Accept": oci.OCI_INDEX})
        assert r.headers["Content-Type"] == oci.OCI_INDEX
        assert r.content == idx.manifest.data
        for child in children:
            assert client.head(f"/v2/acme/web/multi/manifests/{child.digest}").status_code == 200
    out = tmp_path / "out"
    pull(registry, "acme/web/multi", "multi", out, "--all")
    assert_identical(out, idx)
