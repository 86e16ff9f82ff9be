"""Parsing and validating manifests (OCI image manifest and index, Docker schema 2).

The registry stores a manifest's bytes exactly as pushed; this module only extracts
what the metadata store needs: the referenced blobs and child manifests, the subject,
the artifact type and platforms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.core import mediatypes as mt
from app.core.digests import Digest, DigestError


class ManifestError(ValueError):
    """The manifest is not valid JSON of a supported schema."""


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    platform: str | None = None  # "os/arch[/variant]" for index entries
    urls: tuple[str, ...] = ()

    @property
    def non_distributable(self) -> bool:
        return self.media_type in mt.NON_DISTRIBUTABLE_LAYERS


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()  # children, for an index
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return mt.is_index(self.media_type)

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config and layers, the blobs that must exist in the registry."""
        return ((self.config,) if self.config else ()) + self.layers

    @property
    def effective_artifact_type(self) -> str | None:
        """Artifact type as the referrers API reports it."""
        if self.artifact_type:
            return self.artifact_type
        if self.config is not None and not self.is_index:
            return self.config.media_type
        return None

    @property
    def platforms(self) -> list[str]:
        return [d.platform for d in self.manifests if d.platform]


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where} is not an object")
    media_type = raw.get("mediaType")
    digest = raw.get("digest")
    size = raw.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestError(f"{where} has no mediaType")
    if not isinstance(digest, str):
        raise ManifestError(f"{where} has no digest")
    try:
        parsed = Digest.parse(digest)
    except DigestError as exc:
        raise ManifestError(f"{where}: {exc}") from exc
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{where} has no valid size")
    artifact_type = raw.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestError(f"{where} has an invalid artifactType")
    platform = None
    plat = raw.get("platform")
    if isinstance(plat, dict) and isinstance(plat.get("os"), str):
        platform = f"{plat['os']}/{plat.get('architecture', '')}"
        if isinstance(plat.get("variant"), str) and plat["variant"]:
            platform += f"/{plat['variant']}"
    urls = raw.get("urls") or ()
    if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
        raise ManifestError(f"{where} has invalid urls")
    return Descriptor(media_type, parsed, size, artifact_type, platform, tuple(urls))


def parse_manifest(payload: bytes, content_type: str | None) -> Manifest:
    """Parse and validate a pushed manifest.

    ``content_type`` is the request's Content-Type; the manifest's own ``mediaType``
    field, when present, must agree with it.
    """
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ManifestError("manifest is not a JSON object")
    declared = raw.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestError("mediaType is not a string")
    ctype = (content_type or "").split(";")[0].strip() or None
    media_type = declared or ctype
    if media_type is None:
        # The OCI spec lets mediaType be omitted; infer it from the structure.
        media_type = mt.OCI_INDEX if "manifests" in raw else mt.OCI_MANIFEST
    if media_type not in mt.MANIFEST_TYPES:
        raise ManifestError(f"unsupported manifest media type {media_type!r}")
    if declared and ctype and ctype != declared and ctype in mt.MANIFEST_TYPES:
        raise ManifestError(
            f"Content-Type {ctype!r} does not match the manifest's mediaType {declared!r}"
        )
    if raw.get("schemaVersion") != 2:
        raise ManifestError("schemaVersion must be 2")
    artifact_type = raw.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestError("artifactType is not a string")
    subject = _descriptor(raw["subject"], "subject") if raw.get("subject") else None
    annotations = raw.get("annotations")
    if annotations is None:
        annotations = {}
    if not isinstance(annotations, dict):
        raise ManifestError("annotations is not an object")
    annotations = {str(k): str(v) for k, v in annotations.items()}

    if mt.is_index(media_type):
        children = raw.get("manifests")
        if not isinstance(children, list):
            raise ManifestError("index has no manifests list")
        descs = tuple(_descriptor(c, f"manifests[{i}]") for i, c in enumerate(children))
        return Manifest(media_type, None, (), descs, subject, artifact_type, annotations)

    config_raw = raw.get("config")
    if config_raw is None:
        raise ManifestError("image manifest has no config")
    config = _descriptor(config_raw, "config")
    layers_raw = raw.get("layers")
    if not isinstance(layers_raw, list):
        raise ManifestError("image manifest has no layers list")
    layers = tuple(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers_raw))
    return Manifest(media_type, config, layers, (), subject, artifact_type, annotations)


@dataclass(frozen=True, slots=True)
class ImageConfigInfo:
    created: str | None
    platform: str | None


def parse_image_config(payload: bytes) -> ImageConfigInfo:
    """Read what tables show from an image config blob; tolerate anything."""
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ImageConfigInfo(None, None)
    if not isinstance(raw, dict):
        return ImageConfigInfo(None, None)
    created = raw.get("created") if isinstance(raw.get("created"), str) else None
    platform = None
    if isinstance(raw.get("os"), str) and isinstance(raw.get("architecture"), str):
        platform = f"{raw['os']}/{raw['architecture']}"
        if isinstance(raw.get("variant"), str) and raw["variant"]:
            platform += f"/{raw['variant']}"
    return ImageConfigInfo(created, platform)
