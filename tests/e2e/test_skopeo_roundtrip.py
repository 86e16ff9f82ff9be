"""skopeo pushes real images into the registry and pulls them back byte-identical."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support import oci
from tests.support.registry import PASSWORD, RegistryServer
from tests.support.tools import require


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require("skopeo"), *args], capture_output=True, text=True, check=False)


def copy(src: str, dest: str, *extra: str) -> None:
    result = skopeo("copy", "--quiet", *extra, src, dest)
    assert result.returncode == 0, result.stderr


def _layout_blobs(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "blobs" / "sha256").iterdir()}


def test_push_and_pull_byte_identical_with_basic_and_token(
    registry: RegistryServer, tmp_path: Path
) -> None:
    layers = [oci.random_layer(200_000 + i * 1000, f"rt{i}") for i in range(3)]
    img = oci.image(layers)
    src = oci.write_layout(tmp_path / "src", {"v1": img})
    creds = f"writer:{PASSWORD}"
    copy(
        f"oci:{src}:v1",
        f"docker://{registry.host}/acme/web/app:v1",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds,
    )
    out = tmp_path / "out"
    copy(
        f"docker://{registry.host}/acme/web/app:v1",
        f"oci:{out}:v1",
        "--src-tls-verify=false",
        "--src-creds",
        creds,
    )
    pulled = _layout_blobs(out)
    for blob in [img.manifest, *img.blobs]:
        assert pulled[blob.digest.split(":")[1]] == blob.data
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == img.digest
