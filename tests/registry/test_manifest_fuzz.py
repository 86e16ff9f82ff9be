"""Fuzzing manifest and config bodies on push (hypothesis, over real HTTP against a
real registry process): whatever the body, the answer is never a 5xx; a refusal is
the OCI error shape with an OCI code; what is accepted reads back byte for byte and
shows in the management API. The registry must stop cleanly at the end having
logged no traceback (``running_registry``), so a failure inside the server that a
client never saw still fails the test.

Generated manifests mix real references (blobs and a child manifest this image
holds, with their true sizes) with arbitrary JSON at every field, so examples get
past the parser into the size checks, the config read and the database writes.
The example budget (400 manifests, 120 configs) keeps the module under a minute
on a busy machine."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.registry.oci_helpers import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    NONDISTRIBUTABLE,
    running_registry,
    sha256,
    upload,
)
from tests.support import oci
from tests.support.api import api
from tests.support.registry import RegistryServer

NAME = "acme/web/fuzz"
MANIFEST_EXAMPLES = 400
CONFIG_EXAMPLES = 120
OCI_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
}


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@dataclass
class Known:
    """Content the image holds, so generated references can be real."""

    config: oci.Blob
    layer: oci.Blob
    child: oci.Image
    image_id: int


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with running_registry(tmp_path_factory.mktemp("fuzz") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def writer(reg: RegistryServer) -> Iterator[httpx.Client]:
    with reg.client("writer") as client:
        yield client


@pytest.fixture(scope="module")
def known(reg: RegistryServer, writer: httpx.Client) -> Known:
    layer = oci.layer({"fuzz": b"fuzz layer"})
    child = oci.image([layer])
    oci.push(writer, NAME, child, "seed")
    with api(reg) as c:
        images = c.get("/workspaces/acme/images", params={"q": "fuzz"}).json()["items"]
    (image_id,) = [i["id"] for i in images if i["full_name"] == NAME]
    return Known(child.blobs[0], layer, child, image_id)


# strategies ------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
media_types = st.sampled_from(
    [
        oci.OCI_MANIFEST,
        oci.OCI_INDEX,
        oci.OCI_CONFIG,
        oci.OCI_LAYER,
        DOCKER_MANIFEST,
        DOCKER_LIST,
        DOCKER_CONFIG,
        NONDISTRIBUTABLE,
        "application/vnd.example+json",
        "",
        "application/" + "x" * 300,
    ]
)
sizes = st.sampled_from([0, 1, 2**31, 2**63 - 1, 2**63, 10**30, -1]) | st.integers()


def valid_documents(known: Known) -> list[dict[str, Any]]:
    """Manifests this image would accept as they are: the starting points."""
    image = json.loads(known.child.manifest.data)
    child = known.child.manifest.descriptor()
    child["platform"] = {"os": "linux", "architecture": "amd64"}
    index = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [child]}
    docker = {
        **image,
        "mediaType": DOCKER_MANIFEST,
        "config": {**image["config"], "mediaType": DOCKER_CONFIG},
    }
    referrer = {
        **image,
        "artifactType": "application/vnd.example.sbom",
        "subject": known.child.manifest.descriptor(),
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
    }
    return [image, index, docker, referrer]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*path, i))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def manifests(draw: st.DrawFn, known: Known) -> Any:
    """A valid manifest with none to a few fields replaced, removed or added."""
    doc = json.loads(json.dumps(draw(st.sampled_from(valid_documents(known)))))
    values = (
        json_values
        | media_types
        | sizes
        | st.sampled_from(
            [known.config.digest, known.layer.digest, known.child.digest, "sha256:" + "0" * 64]
        )
    )
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            if draw(st.integers(0, 9)) == 0:
                doc = draw(values)  # the whole document
            continue
        parent, last = _at(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if op == "replace":
            parent[last] = draw(values)
        elif op == "remove":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(values)
        else:
            parent.append(draw(values))
    return doc


@st.composite
def bodies(draw: st.DrawFn, known: Known) -> bytes:
    """A manifest as bytes, sometimes bent: another encoding, a nesting bomb inside,
    a truncation, or random bytes altogether."""
    doc = draw(manifests(known))
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    bend = draw(st.sampled_from(["none"] * 6 + ["bomb", "encoding", "cut", "bytes"]))
    if bend == "bomb" and text.endswith("}"):
        depth = draw(st.sampled_from([33, 500, 990, 5_000, 150_000]))
        text = text[:-1] + (", " if doc else "") + '"bomb": ' + "[" * depth + "]" * depth + "}"
    if bend == "encoding":
        encoding = draw(st.sampled_from(["utf-8-sig", "utf-16", "utf-16-be", "utf-32"]))
        return text.encode(encoding)
    if bend == "cut":
        return text.encode("utf-8", "surrogatepass")[: draw(st.integers(0, len(text)))]
    if bend == "bytes":
        return draw(st.binary(max_size=200))
    return text.encode("utf-8", "surrogatepass")


def config_bodies() -> st.SearchStrategy[bytes]:
    objects = st.fixed_dictionaries(
        {},
        optional={
            "created": st.text(max_size=80) | json_values,
            "os": st.text(max_size=10) | json_values,
            "architecture": st.text(max_size=10) | json_values,
            "variant": st.text(max_size=5) | json_values,
            "rootfs": json_values,
        },
    ).map(lambda d: json.dumps(d, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    bombs = st.sampled_from([40, 990, 5_000, 100_000]).map(
        lambda n: b'{"config": ' + b"[" * n + b"]" * n + b"}"
    )
    encodings = st.tuples(objects, st.sampled_from(["utf-16", "utf-8-sig"])).map(
        lambda p: p[0].decode("utf-8", "surrogatepass").encode(p[1], "surrogatepass")
    )
    return (
        objects
        | bombs
        | encodings
        | json_values.map(lambda v: json.dumps(v).encode())
        | (st.binary(max_size=100))
    )


# checks --------------------------------------------------------------------------


def check_answer(r: httpx.Response, tally: Counter[str]) -> None:
    tally[str(r.status_code)] += 1
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        codes = {e["code"] for e in r.json()["errors"]}
        assert codes <= OCI_CODES, r.text
        tally.update(codes)


def report(what: str, tally: Counter[str], started: float) -> None:
    """Figures for the record (shown with -s): examples, answers, time."""
    examples = sum(v for k, v in tally.items() if k.isdigit())
    print(f"\n{what}: {examples} examples in {time.monotonic() - started:.1f} s: {dict(tally)}")


def check_stored(reg: RegistryServer, writer: httpx.Client, known: Known, body: bytes) -> None:
    """Accepted: it reads back as pushed, and the management API shows it."""
    digest = sha256(body)
    got = writer.get(f"/v2/{NAME}/manifests/{digest}")
    assert got.status_code == 200, got.text
    assert got.content == body
    with api(reg, "writer") as c:
        detail = c.get(f"/images/{known.image_id}/manifests/{digest}")
        assert detail.status_code == 200, detail.text
        tags = c.get(f"/images/{known.image_id}/tags", params={"sort": "-size"})
        assert tags.status_code == 200, tags.text


def test_manifest_bodies_never_answer_5xx(
    reg: RegistryServer, writer: httpx.Client, known: Known
) -> None:
    tally: Counter[str] = Counter()
    started = time.monotonic()

    @fuzz_settings(MANIFEST_EXAMPLES)
    @given(
        body=bodies(known),
        content_type=media_types,
        by_digest=st.booleans(),
    )
    def push(body: bytes, content_type: str, by_digest: bool) -> None:
        reference = sha256(body) if by_digest else "fuzz"
        r = writer.put(
            f"/v2/{NAME}/manifests/{reference}",
            content=body,
            headers={"Content-Type": content_type},
        )
        check_answer(r, tally)
        if r.status_code == 201:
            check_stored(reg, writer, known, body)

    push()
    report("manifest bodies", tally, started)


def test_config_bodies_never_answer_5xx(
    reg: RegistryServer, writer: httpx.Client, known: Known
) -> None:
    tally: Counter[str] = Counter()
    started = time.monotonic()

    @fuzz_settings(CONFIG_EXAMPLES)
    @given(
        config=config_bodies(),
        media_type=st.sampled_from([oci.OCI_CONFIG, DOCKER_CONFIG, "application/vnd.x+json"]),
    )
    def push(config: bytes, media_type: str) -> None:
        digest = upload(writer, NAME, config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": {"mediaType": media_type, "digest": digest, "size": len(config)},
            "layers": [known.layer.descriptor()],
        }
        body = json.dumps(manifest).encode()
        r = writer.put(
            f"/v2/{NAME}/manifests/cfg",
            content=body,
            headers={"Content-Type": oci.OCI_MANIFEST},
        )
        check_answer(r, tally)
        if r.status_code == 201:
            check_stored(reg, writer, known, body)
        else:
            assert media_type != "application/vnd.x+json", r.text  # opaque: never read

    push()
    report("config bodies", tally, started)
