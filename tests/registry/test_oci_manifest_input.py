"""Hostile manifest and config bodies on push: nesting bombs, absurd or overflowing
sizes, sizes that disagree with the stored blobs, strings no database column takes,
other encodings than UTF-8. Each is 400 ``MANIFEST_INVALID`` in the OCI error shape
(never a 500), nothing is stored, and the registry keeps serving, on SQLite and on
PostgreSQL (whose columns check lengths and encodings that SQLite does not)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.registry.oci_helpers import (
    NONDISTRIBUTABLE,
    assert_error,
    put_manifest,
    running_registry,
    sha256,
    upload,
)
from tests.support import oci
from tests.support.postgres import PostgresServer
from tests.support.registry import RegistryServer

NAME = "acme/web/hostile"
INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def reg(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    data = tmp_path_factory.mktemp(f"hostile-{request.param}") / "data"
    if request.param == "sqlite":
        with running_registry(data) as server:
            yield server
        return
    pg = PostgresServer()
    try:
        url = pg.create_database("berth")
        with running_registry(data, database_url=url) as server:
            yield server
    finally:
        pg.stop()


@pytest.fixture(scope="module")
def writer(reg: RegistryServer) -> Iterator[httpx.Client]:
    with reg.client("writer") as client:
        yield client


@pytest.fixture(scope="module")
def base(writer: httpx.Client) -> oci.Image:
    """An image whose config and layer are uploaded (not pushed as a manifest)."""
    image = oci.image([oci.layer({"hostile": b"layer bytes"})])
    for blob in image.blobs:
        upload(writer, NAME, blob.data)
    return image


def manifest_of(image: oci.Image) -> dict[str, object]:
    body: dict[str, object] = json.loads(image.manifest.data)
    return body


def refused(writer: httpx.Client, body: bytes, reference: str = "hostile") -> None:
    r = put_manifest(writer, NAME, reference, body, oci.OCI_MANIFEST)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert writer.get(f"/v2/{NAME}/manifests/{reference}").status_code == 404
    digest = sha256(body)
    assert writer.head(f"/v2/{NAME}/manifests/{digest}").status_code == 404


def test_a_manifest_nested_200000_deep(writer: httpx.Client) -> None:
    refused(writer, b"[" * 200_000 + b"]" * 200_000)
    refused(writer, b'{"a":' * 200_000 + b"1" + b"}" * 200_000)


def test_nesting_deep_inside_annotations(writer: httpx.Client, base: oci.Image) -> None:
    for depth in (100, 900, 100_000):
        body = manifest_of(base)
        text = json.dumps(body)[:-1] + ', "annotations": {"x": ' + "[" * depth + "]" * depth + "}}"
        refused(writer, text.encode())


def test_annotations_must_be_strings(writer: httpx.Client, base: oci.Image) -> None:
    for value in (1, None, ["a"], {"k": "v"}):
        body = manifest_of(base)
        body["annotations"] = {"org.example": value}
        refused(writer, json.dumps(body).encode())


def test_a_config_that_is_a_nesting_bomb(writer: httpx.Client, base: oci.Image) -> None:
    """Uploading it is fine (blobs are opaque); a manifest naming it as its image
    config is refused, and the next good push still works."""
    layer = base.blobs[1]
    for bomb in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5_000 + b"1" + b"}" * 5_000):
        config = oci.Blob(bomb, oci.OCI_CONFIG)
        upload(writer, NAME, config.data)
        refused(writer, oci.image([layer], config_blob=config).manifest.data)
    r = put_manifest(writer, NAME, "good", base.manifest.data, oci.OCI_MANIFEST)
    assert r.status_code == 201, r.text


def test_a_config_that_is_not_json(writer: httpx.Client, base: oci.Image) -> None:
    layer = base.blobs[1]
    for junk in (b"\xff\xfe not json", b"[1, 2]", '{"created": "x"}'.encode("utf-16")):
        config = oci.Blob(junk, oci.OCI_CONFIG)
        upload(writer, NAME, config.data)
        refused(writer, oci.image([layer], config_blob=config).manifest.data)


def test_absurd_and_overflowing_sizes(writer: httpx.Client, base: oci.Image) -> None:
    for size in (10**30, INT64_MAX + 1, -1):
        body = manifest_of(base)
        body["layers"][0]["size"] = size  # type: ignore[index]
        refused(writer, json.dumps(body).encode())
    # Two foreign layers (not stored here, so nothing to compare) that overflow a sum.
    body = manifest_of(base)
    foreign = {"mediaType": NONDISTRIBUTABLE, "digest": sha256(b"far away"), "size": INT64_MAX}
    body["layers"] = [*body["layers"], foreign, foreign]  # type: ignore[misc]
    refused(writer, json.dumps(body).encode())


def test_an_integer_too_long_to_convert(writer: httpx.Client, base: oci.Image) -> None:
    text = json.dumps(manifest_of(base)).replace(
        '"schemaVersion": 2', '"schemaVersion": ' + "9" * 5000
    )
    refused(writer, text.encode())


def test_declared_sizes_must_match_the_stored_blobs(writer: httpx.Client, base: oci.Image) -> None:
    layer_size = base.blobs[1].size
    for size in (5 * 2**50, layer_size + 1, layer_size - 1, 0):
        body = manifest_of(base)
        body["layers"][0]["size"] = size  # type: ignore[index]
        refused(writer, json.dumps(body).encode())
    body = manifest_of(base)
    body["config"]["size"] += 1  # type: ignore[index]
    refused(writer, json.dumps(body).encode())


def test_index_child_sizes_must_match(writer: httpx.Client, base: oci.Image) -> None:
    r = put_manifest(writer, NAME, base.digest, base.manifest.data, oci.OCI_MANIFEST)
    assert r.status_code == 201, r.text
    child = base.manifest.descriptor()
    child["size"] = base.manifest.size * 1000
    body = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [child]}
    r = put_manifest(writer, NAME, "index", json.dumps(body).encode(), oci.OCI_INDEX)
    assert_error(r, 400, "MANIFEST_INVALID")


def test_other_encodings_than_utf8(writer: httpx.Client, base: oci.Image) -> None:
    text = base.manifest.data.decode()
    for encoded in (
        b"\xef\xbb\xbf" + base.manifest.data,  # UTF-8 with a byte-order mark
        text.encode("utf-16"),
        text.encode("utf-16-le"),
        text.encode("utf-32"),
        base.manifest.data[:-1] + b', "annotations": {"a": "\xed\xa0\x80"}}',  # a surrogate
    ):
        refused(writer, encoded)


def test_strings_no_column_takes(writer: httpx.Client, base: oci.Image) -> None:
    """Lone surrogates (valid JSON escapes, not encodable as UTF-8) and media types
    longer than a media type may be (RFC 6838: 127 + 1 + 127)."""
    cases: list[dict[str, object]] = []
    body = manifest_of(base)
    body["artifactType"] = "application/" + "x" * 300
    cases.append(body)
    body = manifest_of(base)
    body["layers"][0]["mediaType"] = "application/" + "x" * 300  # type: ignore[index]
    cases.append(body)
    for case in cases:
        refused(writer, json.dumps(case).encode())
    lone = json.dumps(manifest_of(base))[:-1] + ', "artifactType": "application/\\ud800"}'
    refused(writer, lone.encode())
    lone = json.dumps(manifest_of(base))[:-1] + ', "annotations": {"\\udfff": "v"}}'
    refused(writer, lone.encode())


def test_too_many_descriptors(writer: httpx.Client, base: oci.Image) -> None:
    body = manifest_of(base)
    body["layers"] = body["layers"] * 10_001  # type: ignore[operator]
    refused(writer, json.dumps(body, separators=(",", ":")).encode())


def test_a_long_created_date_in_the_config(writer: httpx.Client) -> None:
    """A config's ``created`` is shown in tables, not trusted: an absurd one is
    dropped (the manifest is fine), never a database error."""
    layer = oci.layer({"created": b"long"})
    image = oci.image([layer], created="2026-01-01T00:00:00Z" + "0" * 500)
    for blob in image.blobs:
        upload(writer, NAME, blob.data)
    r = put_manifest(writer, NAME, "long-created", image.manifest.data, oci.OCI_MANIFEST)
    assert r.status_code == 201, r.text


def test_the_registry_still_serves(writer: httpx.Client, base: oci.Image) -> None:
    r = put_manifest(writer, NAME, "after", base.manifest.data, oci.OCI_MANIFEST)
    assert r.status_code == 201, r.text
    assert writer.get(f"/v2/{NAME}/manifests/after").content == base.manifest.data


def test_hostile_bodies_left_nothing_behind(reg: RegistryServer) -> None:
    with reg.client("writer") as c:
        tags = c.get(f"/v2/{NAME}/tags/list").json()["tags"]
    assert "hostile" not in tags
    assert "index" not in tags
