"""Real OCI content written from Python: gzip'd tar layers, image configs,
manifests, indexes; an OCI image layout on disk for skopeo; and a small HTTP
pusher for tests that seed many images quickly without skopeo."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str
    platform: dict[str, str] | None = None

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict[str, object]:
        d: dict[str, object] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform:
            d["platform"] = self.platform
        return d


def layer(files: dict[str, bytes]) -> Blob:
    """A gzip'd tar layer holding ``files`` (deterministic: same files, same digest)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return Blob(gzip.compress(raw.getvalue(), compresslevel=1, mtime=0), OCI_LAYER)


def random_layer(size: int, seed: int | str) -> Blob:
    """A layer of incompressible bytes, so its blob size is close to ``size``."""
    rng = random.Random(seed)
    return layer({f"data-{seed}.bin": rng.randbytes(size)})


def config(
    layers: list[Blob],
    *,
    created: str = "2026-01-01T00:00:00Z",
    arch: str = "amd64",
    os: str = "linux",
    label: str = "",
) -> Blob:
    diff_ids = ["sha256:" + hashlib.sha256(gzip.decompress(b.data)).hexdigest() for b in layers]
    body = {
        "created": created,
        "architecture": arch,
        "os": os,
        "config": {"Labels": {"test": label}} if label else {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": "tests"} for _ in layers],
    }
    return Blob(json.dumps(body, sort_keys=True).encode(), OCI_CONFIG)


@dataclass
class Image:
    manifest: Blob
    blobs: list[Blob] = field(default_factory=list)  # config and layers
    children: list[Image] = field(default_factory=list)  # for an index

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def all_blobs(self) -> list[Blob]:
        out = list(self.blobs)
        for child in self.children:
            out += child.all_blobs()
        return out

    @property
    def compressed_size(self) -> int:
        return sum(b.size for b in self.blobs) + self.manifest.size

    def reachable(self) -> dict[str, int]:
        """Digest → size of everything this manifest reaches, itself included: what a
        registry stores for it (an index's children are manifests of their own)."""
        out = {self.digest: self.manifest.size}
        out.update({b.digest: b.size for b in self.blobs})
        for child in self.children:
            out.update(child.reachable())
        return out


def image(
    layers: list[Blob],
    *,
    created: str = "2026-01-01T00:00:00Z",
    arch: str = "amd64",
    label: str = "",
    subject: Blob | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
    config_blob: Blob | None = None,
) -> Image:
    cfg = config_blob or config(layers, created=created, arch=arch, label=label)
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": cfg.descriptor(),
        "layers": [b.descriptor() for b in layers],
    }
    if subject is not None:
        body["subject"] = {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        }
    if artifact_type is not None:
        body["artifactType"] = artifact_type
    if annotations:
        body["annotations"] = annotations
    manifest = Blob(
        json.dumps(body, sort_keys=True).encode(),
        OCI_MANIFEST,
        {"architecture": arch, "os": "linux"},
    )
    return Image(manifest, [cfg, *layers])


def index(children: list[Image]) -> Image:
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [c.manifest.descriptor() for c in children],
    }
    return Image(Blob(json.dumps(body, sort_keys=True).encode(), OCI_INDEX), [], children)


def write_layout(root: Path, tagged: dict[str, Image]) -> Path:
    """An OCI image layout with each image under its ``org.opencontainers.image.ref.name``."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def put(blob: Blob) -> None:
        path = blobs / blob.digest.split(":", 1)[1]
        if not path.exists():
            path.write_bytes(blob.data)

    entries = []
    for tag, img in tagged.items():
        stack = [img]
        while stack:
            current = stack.pop()
            put(current.manifest)
            for b in current.blobs:
                put(b)
            stack.extend(current.children)
        desc = {
            "mediaType": img.manifest.media_type,
            "digest": img.digest,
            "size": img.manifest.size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
        entries.append(desc)
    (root / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    )
    return root


def push(client: httpx.Client, name: str, img: Image, tag: str | None = None) -> httpx.Response:
    """Push an image (or index and its children) with plain HTTP calls."""
    for child in img.children:
        push(client, name, child)
    for b in img.blobs:
        head = client.head(f"/v2/{name}/blobs/{b.digest}")
        if head.status_code == 200:
            continue
        r = client.post(
            f"/v2/{name}/blobs/uploads/",
            params={"digest": b.digest},
            content=b.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if r.status_code != 201:
            raise AssertionError(f"blob upload failed: {r.status_code} {r.text}")
    r = client.put(
        f"/v2/{name}/manifests/{tag or img.digest}",
        content=img.manifest.data,
        headers={"Content-Type": img.manifest.media_type},
    )
    if r.status_code != 201:
        raise AssertionError(f"manifest push failed: {r.status_code} {r.text}")
    return r


def follow_links(client: httpx.Client, url: str, key: str) -> list[str]:
    """Every entry of a paginated list (tags/list: "tags", _catalog: "repositories"),
    following its Link headers page by page."""
    seen: list[str] = []
    next_url: str | None = url
    while next_url is not None:
        r = client.get(next_url)
        assert r.status_code == 200, r.text
        seen += r.json()[key]
        link = r.headers.get("Link")
        next_url = link[1 : link.index(">")] if link else None
    return seen
