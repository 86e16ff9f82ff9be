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


# Sizes are stored as signed 64-bit integers (as Distribution and every OCI client
# hold them); anything larger is not a size.
MAX_SIZE = 2**63 - 1
# RFC 6838: a type and a subtype of at most 127 characters each.
MAX_MEDIA_TYPE = 255
# What a pushed manifest may hold. Real manifests nest five deep and list at most a
# few hundred descriptors; the limits stop documents built to exhaust the parser, the
# stack or the database's statement parameters long before any real manifest.
MAX_DEPTH = 32
MAX_DESCRIPTORS = 10_000


def _load_json(payload: bytes | str) -> Any:
    """json.loads, with every way it can fail on hostile input as a ManifestError:
    nesting past the interpreter's recursion limit raises RecursionError, and an
    integer of more than 4300 digits a plain ValueError."""
    try:
        return json.loads(payload)
    except RecursionError:
        raise ManifestError("JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"not valid JSON: {exc}") from None


def _check_tree(raw: Any, max_depth: int) -> None:
    """Refuse documents nested deeper than ``max_depth`` and strings that are not
    Unicode text (lone surrogates from ``\\ud800`` escapes: no UTF-8 column takes them).
    Iterative, so it cannot itself run out of stack."""
    stack: list[tuple[Any, int]] = [(raw, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                raise ManifestError(f"JSON nested more than {max_depth} deep")
            if isinstance(node, dict):
                for key, value in node.items():
                    _check_text(key)
                    stack.append((value, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            _check_text(node)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ManifestError("a string holds a lone surrogate, which is not text") from None


def _decode_pushed(payload: bytes) -> str:
    """A pushed manifest is UTF-8 without a byte-order mark (RFC 8259 §8.1), whatever
    json.loads would also guess its way through (UTF-16, UTF-32, a BOM, surrogates
    encoded as UTF-8): its digest is over these bytes, so other clients must read
    exactly what they name."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"manifest is not UTF-8: {exc.reason} at byte {exc.start}") from None
    if text.startswith("\ufeff"):
        raise ManifestError("manifest starts with a byte-order mark; JSON must not")
    return text


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
    if len(media_type) > MAX_MEDIA_TYPE:
        raise ManifestError(f"{where} has a mediaType longer than {MAX_MEDIA_TYPE} characters")
    if not isinstance(digest, str):
        raise ManifestError(f"{where} has no digest")
    try:
        parsed = Digest.parse(digest)
    except DigestError as exc:
        raise ManifestError(f"{where}: {exc}") from exc
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise ManifestError(f"{where} has no valid size (0 to {MAX_SIZE})")
    artifact_type = raw.get("artifactType")
    if artifact_type is not None and (
        not isinstance(artifact_type, str) or len(artifact_type) > MAX_MEDIA_TYPE
    ):
        raise ManifestError(f"{where} has an invalid artifactType")
    platform = None
    plat = raw.get("platform")
    if isinstance(plat, dict) and isinstance(plat.get("os"), str):
        arch = plat.get("architecture")
        platform = f"{plat['os']}/{arch if isinstance(arch, str) else ''}"
        if isinstance(plat.get("variant"), str) and plat["variant"]:
            platform += f"/{plat['variant']}"
    urls = raw.get("urls") or ()
    if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
        raise ManifestError(f"{where} has invalid urls")
    return Descriptor(media_type, parsed, size, artifact_type, platform, tuple(urls))


def parse_manifest(payload: bytes, content_type: str | None, *, strict: bool = False) -> Manifest:
    """Parse and validate a manifest.

    ``content_type`` is the request's Content-Type; the manifest's own ``mediaType``
    field, when present, must agree with it. ``strict`` is for what a registry
    accepts on push: UTF-8 only, annotations that are strings, and bounds on nesting
    and on the number of descriptors. Without it (reading what another registry
    serves) anything JSON is tolerated as far as it can be understood.
    """
    raw = _load_json(_decode_pushed(payload) if strict else payload)
    if strict:
        _check_tree(raw, MAX_DEPTH)
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
    if artifact_type is not None and (
        not isinstance(artifact_type, str) or len(artifact_type) > MAX_MEDIA_TYPE
    ):
        raise ManifestError("artifactType is not a media type")
    subject = _descriptor(raw["subject"], "subject") if raw.get("subject") else None
    annotations = _annotations(raw.get("annotations"), strict=strict)

    if mt.is_index(media_type):
        children = raw.get("manifests")
        if not isinstance(children, list):
            raise ManifestError("index has no manifests list")
        if strict and len(children) > MAX_DESCRIPTORS:
            raise ManifestError(f"index lists more than {MAX_DESCRIPTORS} manifests")
        descs = tuple(_descriptor(c, f"manifests[{i}]") for i, c in enumerate(children))
        return Manifest(media_type, None, (), descs, subject, artifact_type, annotations)

    config_raw = raw.get("config")
    if config_raw is None:
        raise ManifestError("image manifest has no config")
    config = _descriptor(config_raw, "config")
    layers_raw = raw.get("layers")
    if not isinstance(layers_raw, list):
        raise ManifestError("image manifest has no layers list")
    if strict and len(layers_raw) > MAX_DESCRIPTORS:
        raise ManifestError(f"image manifest lists more than {MAX_DESCRIPTORS} layers")
    layers = tuple(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers_raw))
    return Manifest(media_type, config, layers, (), subject, artifact_type, annotations)


def _annotations(raw: Any, *, strict: bool) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ManifestError("annotations is not an object")
    if strict:
        # The image spec: "annotations MUST be a key-value map where both the key and
        # value MUST be strings".
        wrong = next((k for k, v in raw.items() if not isinstance(v, str)), None)
        if wrong is not None:
            raise ManifestError(f"annotation {wrong!r} is not a string")
        return dict(raw)
    # Another registry's leniency is shown as far as it reads as text.
    return {str(k): str(v) for k, v in raw.items() if not isinstance(v, dict | list)}


@dataclass(frozen=True, slots=True)
class ImageConfigInfo:
    created: str | None
    platform: str | None
    # False when the bytes are not a JSON object (not an image config at all).
    readable: bool = True


def parse_image_config(payload: bytes, *, strict: bool = False) -> ImageConfigInfo:
    """Read what tables show from an image config blob; tolerate anything, and say
    whether it was a JSON object at all (``strict``: a UTF-8 one, as on push)."""
    try:
        raw = _load_json(_decode_pushed(payload) if strict else payload)
    except ManifestError:
        return ImageConfigInfo(None, None, readable=False)
    if not isinstance(raw, dict):
        return ImageConfigInfo(None, None, readable=False)
    created = _text(raw.get("created"))
    platform = None
    os_, arch, variant = (
        _text(raw.get("os")),
        _text(raw.get("architecture")),
        _text(raw.get("variant")),
    )
    if os_ is not None and arch is not None:
        platform = f"{os_}/{arch}" + (f"/{variant}" if variant else "")
    return ImageConfigInfo(created, platform)


def _text(value: Any) -> str | None:
    """A string that is text (encodes as UTF-8), else None."""
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value
