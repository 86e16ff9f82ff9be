"""Manifests over the OCI Distribution API: the four manifest types by tag and by
digest with their headers, the checks a push must pass (blobs and children known,
valid JSON of the declared type, digest, size), subjects and the referrers API,
tags/list and _catalog pagination, and what each DELETE removes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.registry.oci_helpers import (
    DOCKER_MANIFEST,
    NONDISTRIBUTABLE,
    assert_error,
    docker_image,
    docker_list,
    put_manifest,
    running_registry,
    sha256,
    sha512,
    upload,
)
from tests.support import oci
from tests.support.registry import RegistryServer

SBOM = "application/vnd.example.sbom.v1"
SIGNATURE_CONFIG = "application/vnd.example.signature.config.v1+json"


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with running_registry(tmp_path_factory.mktemp("oci-manifests") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def writer(reg: RegistryServer) -> Iterator[httpx.Client]:
    with reg.client("writer") as client:
        yield client


def _name() -> str:
    return f"acme/web/img-{uuid.uuid4().hex[:8]}"


def _image(seed: str, arch: str = "amd64") -> oci.Image:
    return oci.image([oci.layer({f"{seed}.txt": seed.encode()})], arch=arch)


def _blobs(client: httpx.Client, name: str, img: oci.Image) -> None:
    for blob in img.all_blobs():
        upload(client, name, blob.data)


def _assert_served(client: httpx.Client, name: str, reference: str, manifest: oci.Blob) -> None:
    for method in ("GET", "HEAD"):
        r = client.request(
            method, f"/v2/{name}/manifests/{reference}", headers={"Accept": manifest.media_type}
        )
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == manifest.media_type
        assert r.headers["Docker-Content-Digest"] == manifest.digest
        assert r.headers["Content-Length"] == str(manifest.size)
        assert r.content == (manifest.data if method == "GET" else b"")


# the four manifest types ------------------------------------------------------------


def _oci_index() -> oci.Image:
    return oci.index([_image("amd", "amd64"), _image("arm", "arm64")])


def _docker_list() -> oci.Image:
    return docker_list(
        [
            docker_image([oci.random_layer(100, f"d{i}")], arch)
            for i, arch in enumerate(("amd64", "arm64"))
        ]
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: _image("plain"),
        _oci_index,
        lambda: docker_image([oci.random_layer(100, "docker")]),
        _docker_list,
    ],
    ids=["oci-manifest", "oci-index", "docker-manifest", "docker-manifest-list"],
)
def test_push_and_pull_each_manifest_type(
    reg: RegistryServer, writer: httpx.Client, make: object
) -> None:
    img: oci.Image = make()  # type: ignore[operator]
    name = _name()
    for child in img.children:
        _blobs(writer, name, child)
        r = put_manifest(writer, name, child.digest, child.manifest.data, child.manifest.media_type)
        assert r.status_code == 201, r.text
    _blobs(writer, name, img)
    r = put_manifest(writer, name, "v1", img.manifest.data, img.manifest.media_type)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/v2/{name}/manifests/{img.digest}"
    assert r.headers["Docker-Content-Digest"] == img.digest
    assert "OCI-Subject" not in r.headers
    _assert_served(writer, name, "v1", img.manifest)
    _assert_served(writer, name, img.digest, img.manifest)
    for child in img.children:
        _assert_served(writer, name, child.digest, child.manifest)


def test_manifest_without_media_type_field_takes_the_content_type(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    img = _image("untyped")
    name = _name()
    _blobs(writer, name, img)
    body = json.loads(img.manifest.data)
    del body["mediaType"]
    payload = json.dumps(body).encode()
    assert put_manifest(writer, name, "v1", payload, oci.OCI_MANIFEST).status_code == 201
    r = writer.get(f"/v2/{name}/manifests/v1")
    assert r.headers["Content-Type"] == oci.OCI_MANIFEST
    assert r.content == payload  # stored byte for byte


def test_unknown_references(reg: RegistryServer, writer: httpx.Client) -> None:
    img = _image("known")
    name = _name()
    _blobs(writer, name, img)
    put_manifest(writer, name, "v1", img.manifest.data, img.manifest.media_type)
    for ref in ("v2", sha256(b"nothing")):
        assert_error(writer.get(f"/v2/{name}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
        assert_error(writer.head(f"/v2/{name}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
    assert_error(writer.get(f"/v2/{_name()}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    # Neither a tag nor a digest: no manifest can be known by it.
    assert_error(writer.get(f"/v2/{name}/manifests/-bad"), 404, "MANIFEST_UNKNOWN")
    assert_error(writer.get(f"/v2/{name}/manifests/{'a' * 129}"), 404, "MANIFEST_UNKNOWN")
    for bad in ("sha256:1234", "sha256:" + "G" * 64, "foo:bar", "sha384:" + "0" * 96):
        assert_error(writer.get(f"/v2/{name}/manifests/{bad}"), 400, "DIGEST_INVALID")


# what a push must pass -------------------------------------------------------------


def test_unknown_blobs_and_children_are_refused(reg: RegistryServer, writer: httpx.Client) -> None:
    img = _image("partial")
    name = _name()
    cfg, layer = img.blobs
    upload(writer, name, cfg.data)
    r = put_manifest(writer, name, "v1", img.manifest.data, img.manifest.media_type)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert r.json()["errors"][0]["detail"] == {"digest": layer.digest}
    # A blob another image of the workspace holds is not this image's to use.
    elsewhere = _name()
    upload(writer, elsewhere, layer.data)
    assert_error(
        put_manifest(writer, name, "v1", img.manifest.data, img.manifest.media_type),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )
    # A missing config counts too.
    other = _image("noconfig")
    upload(writer, name, other.blobs[1].data)
    assert_error(
        put_manifest(writer, name, "v2", other.manifest.data, other.manifest.media_type),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )
    # An index whose children were never pushed.
    idx = oci.index([img])
    assert_error(
        put_manifest(writer, name, "multi", idx.manifest.data, idx.manifest.media_type),
        400,
        "MANIFEST_BLOB_UNKNOWN",
    )
    for ref in ("v1", "v2", "multi", img.digest, idx.digest):
        assert_error(writer.get(f"/v2/{name}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
    assert writer.get(f"/v2/{name}/tags/list").json()["tags"] == []


def test_non_distributable_layers_need_no_blob(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    # Never uploaded: clients fetch such layers from their urls, not from a registry.
    foreign = oci.Blob(oci.layer({"licensed.dll": b"foreign"}).data, NONDISTRIBUTABLE)
    local = oci.layer({"local.txt": b"local"})
    img = oci.image([foreign, local])
    upload(writer, name, img.blobs[0].data)  # config
    upload(writer, name, local.data)
    r = put_manifest(writer, name, "v1", img.manifest.data, img.manifest.media_type)
    assert r.status_code == 201, r.text
    _assert_served(writer, name, "v1", img.manifest)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", oci.OCI_MANIFEST),
        (b"[]", oci.OCI_MANIFEST),
        (b"\xff\xfe", oci.OCI_MANIFEST),
        (json.dumps({"schemaVersion": 1, "mediaType": oci.OCI_MANIFEST}).encode(), None),
        (json.dumps({"schemaVersion": 2, "mediaType": "text/plain"}).encode(), None),
        (json.dumps({"schemaVersion": 2}).encode(), "application/json"),
        # The Content-Type and the manifest's own mediaType disagree.
        (json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST}).encode(), oci.OCI_MANIFEST),
        (json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST}).encode(), None),
        (
            json.dumps(
                {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST, "config": {}, "layers": []}
            ).encode(),
            None,
        ),
        (
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": oci.OCI_MANIFEST,
                    "config": {"mediaType": oci.OCI_CONFIG, "digest": "sha256:12", "size": 2},
                    "layers": [],
                }
            ).encode(),
            None,
        ),
        (
            json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": 3}).encode(),
            None,
        ),
    ],
)
def test_invalid_manifests_are_refused(
    reg: RegistryServer, writer: httpx.Client, body: bytes, content_type: str | None
) -> None:
    name = _name()
    headers = {"Content-Type": content_type} if content_type else {}
    r = writer.put(f"/v2/{name}/manifests/v1", content=body, headers=headers)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert_error(writer.get(f"/v2/{name}/manifests/v1"), 404, "MANIFEST_UNKNOWN")


def test_invalid_tag_on_push(reg: RegistryServer, writer: httpx.Client) -> None:
    img = _image("badtag")
    name = _name()
    _blobs(writer, name, img)
    for tag in ("-lead", ".lead", "a" * 129, "sp%20ace", "v1%0A"):
        r = put_manifest(writer, name, tag, img.manifest.data, img.manifest.media_type)
        assert_error(r, 400, "MANIFEST_INVALID")
    assert writer.get(f"/v2/{name}/tags/list").json()["tags"] == []


def test_push_by_digest_checks_the_digest(reg: RegistryServer, writer: httpx.Client) -> None:
    img = _image("bydigest")
    name = _name()
    _blobs(writer, name, img)
    wrong = sha256(b"not the manifest")
    r = put_manifest(writer, name, wrong, img.manifest.data, img.manifest.media_type)
    assert_error(r, 400, "DIGEST_INVALID")
    r = put_manifest(writer, name, "sha256:abc", img.manifest.data, img.manifest.media_type)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_error(writer.get(f"/v2/{name}/manifests/{wrong}"), 404, "MANIFEST_UNKNOWN")
    assert_error(writer.get(f"/v2/{name}/manifests/{img.digest}"), 404, "MANIFEST_UNKNOWN")
    r = put_manifest(writer, name, img.digest, img.manifest.data, img.manifest.media_type)
    assert r.status_code == 201
    assert writer.get(f"/v2/{name}/tags/list").json()["tags"] == []  # no tag made


def test_sha512_manifest_digest(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    layer = oci.layer({"x": b"sha512"})
    cfg = oci.config([layer])
    upload(writer, name, layer.data, sha512(layer.data))
    upload(writer, name, cfg.data, sha512(cfg.data))
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": {"mediaType": oci.OCI_CONFIG, "digest": sha512(cfg.data), "size": cfg.size},
            "layers": [
                {"mediaType": oci.OCI_LAYER, "digest": sha512(layer.data), "size": layer.size}
            ],
        }
    ).encode()
    digest = sha512(body)
    r = put_manifest(writer, name, digest, body, oci.OCI_MANIFEST)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == digest
    r = writer.get(f"/v2/{name}/manifests/{digest}")
    assert r.content == body
    assert r.headers["Docker-Content-Digest"] == digest


def test_tag_parameters_on_a_push_by_digest(reg: RegistryServer, writer: httpx.Client) -> None:
    """Distribution spec 1.1: ``?tag=`` on a push by digest sets those tags, and the
    answer names each in ``OCI-Tag``; a bad tag refuses the whole push."""
    img = _image("tagparams")
    name = _name()
    _blobs(writer, name, img)
    url = f"/v2/{name}/manifests/{img.digest}"
    headers = {"Content-Type": img.manifest.media_type}
    bad = writer.put(
        url, params=[("tag", "v1"), ("tag", "-bad")], content=img.manifest.data, headers=headers
    )
    assert_error(bad, 400, "TAG_INVALID")
    assert_error(writer.get(url), 404, "MANIFEST_UNKNOWN")  # nothing written
    tags = ["1.2.3", "1.2", "1", "latest", "1.2"]
    r = writer.put(
        url, params=[("tag", t) for t in tags], content=img.manifest.data, headers=headers
    )
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == img.digest
    said = {t.strip() for value in r.headers.get_list("OCI-Tag") for t in value.split(",")}
    assert said == {"1.2.3", "1.2", "1", "latest"}
    assert sorted(writer.get(f"/v2/{name}/tags/list").json()["tags"]) == sorted(said)
    for tag in said:
        _assert_served(writer, name, tag, img.manifest)
    many = [("tag", f"t{i}") for i in range(101)]
    r = writer.put(url, params=many, content=img.manifest.data, headers=headers)
    assert r.status_code == 414, r.text


def test_a_push_by_tag_can_keep_a_sha512_digest(reg: RegistryServer, writer: httpx.Client) -> None:
    """A manifest pushed by tag is stored under its sha256 digest unless the client
    names another with ``?digest=`` (as with a blob upload); the tag then resolves
    to that digest, and a digest that does not match the bytes is refused. With
    ``?tag=`` on a push by sha512 digest, the same comes out."""
    img = _image("tag512")
    name = _name()
    _blobs(writer, name, img)
    want = sha512(img.manifest.data)
    headers = {"Content-Type": img.manifest.media_type}
    wrong = sha512(b"other bytes")
    r = writer.put(
        f"/v2/{name}/manifests/v1",
        params={"digest": wrong},
        content=img.manifest.data,
        headers=headers,
    )
    assert_error(r, 400, "DIGEST_INVALID")
    assert_error(writer.get(f"/v2/{name}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    r = writer.put(
        f"/v2/{name}/manifests/v1",
        params={"digest": want},
        content=img.manifest.data,
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == want
    assert r.headers["Location"] == f"/v2/{name}/manifests/{want}"
    for ref in ("v1", want):
        got = writer.get(f"/v2/{name}/manifests/{ref}")
        assert got.status_code == 200, got.text
        assert got.headers["Docker-Content-Digest"] == want
        assert got.content == img.manifest.data
    # Without ?digest= the same bytes by tag are the sha256 manifest, a second one.
    r = put_manifest(writer, name, "v2", img.manifest.data, img.manifest.media_type)
    assert r.headers["Docker-Content-Digest"] == img.digest
    # The tag-parameter way: push by the sha512 digest, tags alongside.
    other = _image("tag512-param")
    _blobs(writer, name, other)
    digest = sha512(other.manifest.data)
    r = writer.put(
        f"/v2/{name}/manifests/{digest}",
        params={"tag": "v3"},
        content=other.manifest.data,
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Tag"] == "v3"
    assert writer.head(f"/v2/{name}/manifests/v3").headers["Docker-Content-Digest"] == digest


def test_manifest_size_limit(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    cfg = oci.Blob(b"{}", "application/vnd.oci.empty.v1+json")
    upload(writer, name, cfg.data)
    limit = 4 * 1024 * 1024

    def manifest_of_size(size: int) -> bytes:
        body = {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": cfg.descriptor(),
            "layers": [],
            "annotations": {"pad": ""},
        }
        short = len(json.dumps(body).encode())
        body["annotations"] = {"pad": "x" * (size - short)}
        data = json.dumps(body).encode()
        assert len(data) == size
        return data

    at_limit = manifest_of_size(limit)
    assert put_manifest(writer, name, "fits", at_limit, oci.OCI_MANIFEST).status_code == 201
    over = manifest_of_size(limit + 1)
    assert_error(put_manifest(writer, name, "over", over, oci.OCI_MANIFEST), 413, "SIZE_INVALID")

    def streamed() -> Iterator[bytes]:  # no Content-Length to go by
        yield over[: limit // 2]
        yield over[limit // 2 :]

    r = writer.put(
        f"/v2/{name}/manifests/over", content=streamed(), headers={"Content-Type": oci.OCI_MANIFEST}
    )
    assert_error(r, 413, "SIZE_INVALID")
    assert_error(writer.get(f"/v2/{name}/manifests/over"), 404, "MANIFEST_UNKNOWN")


# subject and referrers ---------------------------------------------------------------


def _artifact(subject: oci.Image, *, artifact_type: str | None, config_type: str) -> oci.Image:
    cfg = oci.Blob(b"{}", config_type)
    layer = oci.Blob(uuid.uuid4().bytes, "application/vnd.example.blob")
    return oci.image(
        [layer],
        config_blob=cfg,
        subject=subject.manifest,
        artifact_type=artifact_type,
        annotations={"org.example.kind": artifact_type or config_type},
    )


def test_subject_header_and_referrers(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    img = _image("subject")
    sbom = _artifact(img, artifact_type=SBOM, config_type="application/vnd.oci.empty.v1+json")
    sig = _artifact(img, artifact_type=None, config_type=SIGNATURE_CONFIG)
    # Referrers may come before their subject (the spec requires accepting them).
    for art in (sbom, sig):
        _blobs(writer, name, art)
        r = put_manifest(writer, name, art.digest, art.manifest.data, art.manifest.media_type)
        assert r.status_code == 201, r.text
        assert r.headers["OCI-Subject"] == img.digest
    _blobs(writer, name, img)
    put_manifest(writer, name, "v1", img.manifest.data, img.manifest.media_type)

    r = writer.get(f"/v2/{name}/referrers/{img.digest}")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == oci.OCI_INDEX
    assert "OCI-Filters-Applied" not in r.headers
    listing = r.json()
    assert listing["schemaVersion"] == 2
    assert listing["mediaType"] == oci.OCI_INDEX
    by_digest = {d["digest"]: d for d in listing["manifests"]}
    assert by_digest == {
        sbom.digest: {
            "mediaType": oci.OCI_MANIFEST,
            "digest": sbom.digest,
            "size": sbom.manifest.size,
            "artifactType": SBOM,
            "annotations": {"org.example.kind": SBOM},
        },
        sig.digest: {
            "mediaType": oci.OCI_MANIFEST,
            "digest": sig.digest,
            "size": sig.manifest.size,
            # no artifactType: the config's media type stands in
            "artifactType": SIGNATURE_CONFIG,
            "annotations": {"org.example.kind": SIGNATURE_CONFIG},
        },
    }
    r = writer.get(f"/v2/{name}/referrers/{img.digest}", params={"artifactType": SBOM})
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in r.json()["manifests"]] == [sbom.digest]
    r = writer.get(f"/v2/{name}/referrers/{img.digest}", params={"artifactType": "none/such"})
    assert r.json()["manifests"] == []
    # Never a 404: an unknown subject, even an unknown image, has no referrers.
    for who, digest in ((name, sha256(b"x")), (_name(), img.digest)):
        r = writer.get(f"/v2/{who}/referrers/{digest}")
        assert r.status_code == 200
        assert r.json()["manifests"] == []
    assert_error(writer.get(f"/v2/{name}/referrers/sha256:12"), 400, "DIGEST_INVALID")


# tags/list ---------------------------------------------------------------------------

TAGS = ["v1.0", "B", "a", "latest", "c10", "c2", "A", "_under", "b-2", "Z9"]


def _expected_order() -> list[str]:
    return sorted(TAGS, key=lambda t: (t.lower(), t))


@pytest.fixture(scope="module")
def tagged(reg: RegistryServer, writer: httpx.Client) -> str:
    name = _name()
    img = _image("tags")
    _blobs(writer, name, img)
    for tag in TAGS:
        put_manifest(writer, name, tag, img.manifest.data, img.manifest.media_type)
    return name


def test_tags_list_in_lexical_order(writer: httpx.Client, tagged: str) -> None:
    r = writer.get(f"/v2/{tagged}/tags/list")
    assert r.status_code == 200
    assert r.json() == {"name": tagged, "tags": _expected_order()}
    assert "Link" not in r.headers


@pytest.mark.parametrize("n", [1, 3, 4, 9, 10])
def test_tags_list_pages_follow_link(writer: httpx.Client, tagged: str, n: int) -> None:
    seen: list[str] = []
    url: str | None = f"/v2/{tagged}/tags/list?n={n}"
    while url is not None:
        r = writer.get(url)
        page = r.json()["tags"]
        assert len(page) == min(n, len(TAGS) - len(seen))
        seen += page
        link = r.headers.get("Link")
        url = None
        if link is not None:
            assert link.endswith('>; rel="next"')
            url = link[1 : link.index(">")]
    assert seen == _expected_order()


def test_tags_list_n_and_last_alone(writer: httpx.Client, tagged: str) -> None:
    order = _expected_order()
    r = writer.get(f"/v2/{tagged}/tags/list", params={"last": order[3]})
    assert r.json()["tags"] == order[4:]
    assert "Link" not in r.headers
    r = writer.get(f"/v2/{tagged}/tags/list", params={"last": "b"})  # not a tag: still a position
    assert r.json()["tags"] == [t for t in order if (t.lower(), t) > ("b", "b")]
    r = writer.get(f"/v2/{tagged}/tags/list", params={"n": 2})
    assert r.json()["tags"] == order[:2]
    assert r.headers["Link"] == f'</v2/{tagged}/tags/list?n=2&last={order[1]}>; rel="next"'
    r = writer.get(f"/v2/{tagged}/tags/list", params={"n": 0})
    assert r.json()["tags"] == []
    assert "Link" not in r.headers
    r = writer.get(f"/v2/{tagged}/tags/list", params={"n": 2, "last": order[-1]})
    assert r.json()["tags"] == []
    for bad in ("-1", "x", "1.5", "²"):
        assert_error(
            writer.get(f"/v2/{tagged}/tags/list", params={"n": bad}),
            400,
            "PAGINATION_NUMBER_INVALID",
        )
    r = writer.get(f"/v2/{tagged}/tags/list", params={"n": "9" * 30})
    assert r.json()["tags"] == order


def test_tags_list_of_unknown_image(writer: httpx.Client) -> None:
    assert_error(writer.get(f"/v2/{_name()}/tags/list"), 404, "NAME_UNKNOWN")


# DELETE --------------------------------------------------------------------------------


def test_delete_by_tag_removes_only_that_tag(reg: RegistryServer, writer: httpx.Client) -> None:
    name = _name()
    img = _image("deltag")
    _blobs(writer, name, img)
    for tag in ("v1", "v2"):
        put_manifest(writer, name, tag, img.manifest.data, img.manifest.media_type)
    r = writer.delete(f"/v2/{name}/manifests/v1")
    assert r.status_code == 202
    assert_error(writer.get(f"/v2/{name}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    _assert_served(writer, name, "v2", img.manifest)
    _assert_served(writer, name, img.digest, img.manifest)
    assert writer.get(f"/v2/{name}/tags/list").json()["tags"] == ["v2"]
    assert_error(writer.delete(f"/v2/{name}/manifests/v1"), 404, "MANIFEST_UNKNOWN")


def test_delete_by_digest_removes_the_manifest_and_its_tags(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    name = _name()
    img, other = _image("deldigest"), _image("stays")
    for each, tags in ((img, ("v1", "v2")), (other, ("keep",))):
        _blobs(writer, name, each)
        for tag in tags:
            put_manifest(writer, name, tag, each.manifest.data, each.manifest.media_type)
    assert writer.delete(f"/v2/{name}/manifests/{img.digest}").status_code == 202
    for ref in ("v1", "v2", img.digest):
        assert_error(writer.get(f"/v2/{name}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")
    assert writer.get(f"/v2/{name}/tags/list").json()["tags"] == ["keep"]
    _assert_served(writer, name, "keep", other.manifest)
    assert_error(writer.delete(f"/v2/{name}/manifests/{img.digest}"), 404, "MANIFEST_UNKNOWN")
    assert_error(writer.delete(f"/v2/{name}/manifests/sha256:1"), 400, "DIGEST_INVALID")


def test_an_index_child_is_deleted_with_its_index(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    name = _name()
    idx = _oci_index()
    for child in idx.children:
        _blobs(writer, name, child)
        put_manifest(writer, name, child.digest, child.manifest.data, child.manifest.media_type)
    put_manifest(writer, name, "multi", idx.manifest.data, idx.manifest.media_type)
    child = idx.children[0]
    # While an index lists it, a child cannot go on its own (the index would break).
    r = writer.delete(f"/v2/{name}/manifests/{child.digest}")
    assert r.status_code == 409
    assert r.json()["errors"][0]["detail"] == {"index": idx.digest}
    _assert_served(writer, name, child.digest, child.manifest)
    assert writer.delete(f"/v2/{name}/manifests/{idx.digest}").status_code == 202
    assert writer.delete(f"/v2/{name}/manifests/{child.digest}").status_code == 202
    assert_error(writer.get(f"/v2/{name}/manifests/{child.digest}"), 404, "MANIFEST_UNKNOWN")


# _catalog ---------------------------------------------------------------------------------


def test_catalog_lists_what_the_caller_may_read(registry: RegistryServer) -> None:
    acme = sorted(f"acme/web/{n}" for n in ("a", "b/one", "b/two", "c", "d"))
    acme_api = ["acme/api/svc"]
    globex = ["globex/tools/x"]
    with registry.client("root") as root:
        for name in acme + acme_api + globex:
            oci.push(root, name, _image(name), "v1")
        # An image with an upload but no manifest is not listed.
        upload(root, "acme/web/no-manifest", b"bytes")

    def catalog(user: str, **params: object) -> httpx.Response:
        with registry.client(user) as client:
            return client.get("/v2/_catalog", params=params)  # type: ignore[arg-type]

    assert catalog("root").json() == {"repositories": sorted(acme + acme_api + globex)}
    assert catalog("wsadmin").json()["repositories"] == sorted(acme + acme_api)
    assert catalog("reader").json()["repositories"] == acme
    assert catalog("outsider").json()["repositories"] == globex

    r = catalog("reader", n=2)
    assert r.json()["repositories"] == acme[:2]
    assert r.headers["Link"] == f'</v2/_catalog?n=2&last={acme[1]}>; rel="next"'
    with registry.client("reader") as reader:
        assert oci.follow_links(reader, "/v2/_catalog?n=2", "repositories") == acme
    assert catalog("reader", last=acme[2]).json()["repositories"] == acme[3:]
    assert catalog("reader", n=0).json()["repositories"] == []
    assert "Link" not in catalog("reader", n=5).headers
    assert_error(catalog("reader", n="many"), 400, "PAGINATION_NUMBER_INVALID")
    with registry.client() as anonymous:
        assert_error(anonymous.get("/v2/_catalog"), 401, "UNAUTHORIZED")
