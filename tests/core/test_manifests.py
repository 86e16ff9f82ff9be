"""Parsing pushed manifests: the four types, what they reference, and refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.core import mediatypes as mt
from app.core.digests import Digest
from app.core.manifests import ManifestError, parse_image_config, parse_manifest

D1, D2, D3 = (str(Digest.of(x)) for x in (b"1", b"2", b"3"))


def _manifest(**extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 10},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2, "size": 20},
            {
                "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                "digest": D3,
                "size": 30,
                "urls": ["https://example.com/layer"],
            },
        ],
        **extra,
    }


def _bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def test_image_manifest() -> None:
    m = parse_manifest(_bytes(_manifest()), mt.OCI_MANIFEST)
    assert m.media_type == mt.OCI_MANIFEST
    assert not m.is_index
    assert [str(b.digest) for b in m.blobs] == [D1, D2, D3]
    assert [b.non_distributable for b in m.layers] == [False, True]
    assert m.layers[1].urls == ("https://example.com/layer",)
    assert m.effective_artifact_type == mt.OCI_CONFIG  # the config type stands in
    assert m.subject is None


def test_artifact_with_subject_and_annotations() -> None:
    body = _manifest(
        artifactType="application/vnd.example.sbom",
        subject={"mediaType": mt.OCI_MANIFEST, "digest": D3, "size": 5},
        annotations={"a": "b"},
    )
    m = parse_manifest(_bytes(body), None)
    assert m.effective_artifact_type == "application/vnd.example.sbom"
    assert m.subject is not None
    assert str(m.subject.digest) == D3
    assert m.annotations == {"a": "b"}


@pytest.mark.parametrize("media_type", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_indexes(media_type: str) -> None:
    body = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": D1,
                "size": 1,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
            {"mediaType": mt.OCI_MANIFEST, "digest": D2, "size": 2},
        ],
    }
    m = parse_manifest(_bytes(body), media_type)
    assert m.is_index
    assert m.blobs == ()
    assert [str(c.digest) for c in m.manifests] == [D1, D2]
    assert m.platforms == ["linux/arm64/v8"]
    assert m.effective_artifact_type is None


def test_media_type_from_content_type_or_structure() -> None:
    body = _manifest()
    del body["mediaType"]
    assert parse_manifest(_bytes(body), mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
    assert parse_manifest(_bytes(body), None).media_type == mt.OCI_MANIFEST
    index = {"schemaVersion": 2, "manifests": []}
    assert parse_manifest(_bytes(index), "").media_type == mt.OCI_INDEX
    # Parameters on the Content-Type do not matter.
    assert parse_manifest(_bytes(_manifest()), f"{mt.OCI_MANIFEST}; charset=utf-8")


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        (b"{", None),
        (b"\xff", None),
        (b"[]", None),
        (_bytes(_manifest(schemaVersion=1)), None),
        (_bytes(_manifest(mediaType="text/plain")), None),
        (_bytes(_manifest(mediaType=5)), None),
        (_bytes(_manifest()), mt.DOCKER_MANIFEST),  # disagrees with mediaType
        (_bytes({**_manifest(), "config": None}), None),
        (_bytes({**_manifest(), "layers": {}}), None),
        (_bytes(_manifest(layers=[{"mediaType": "x", "digest": "sha256:1", "size": 1}])), None),
        (_bytes(_manifest(layers=[{"mediaType": "x", "digest": D1, "size": -1}])), None),
        (_bytes(_manifest(layers=[{"mediaType": "x", "digest": D1, "size": True}])), None),
        (_bytes(_manifest(layers=[{"digest": D1, "size": 1}])), None),
        (_bytes(_manifest(layers=["x"])), None),
        (_bytes(_manifest(layers=[{"mediaType": "x", "digest": D1, "size": 1, "urls": 3}])), None),
        (_bytes(_manifest(artifactType=3)), None),
        (_bytes(_manifest(annotations=[])), None),
        (_bytes({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": {}}), None),
    ],
)
def test_refused(payload: bytes, content_type: str | None) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(payload, content_type)


def test_image_config_is_read_leniently() -> None:
    info = parse_image_config(
        _bytes(
            {
                "created": "2026-01-01T00:00:00Z",
                "os": "linux",
                "architecture": "arm",
                "variant": "v7",
            }
        )
    )
    assert (info.created, info.platform) == ("2026-01-01T00:00:00Z", "linux/arm/v7")
    for junk in (b"", b"[]", b"{", _bytes({"os": 1, "created": 2})):
        info = parse_image_config(junk)
        assert (info.created, info.platform) == (None, None)
