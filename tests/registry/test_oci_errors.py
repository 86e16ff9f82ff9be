"""Bad input on the OCI Distribution API: invalid names, missing or wrong
credentials, tokens of the wrong scope, unknown endpoints and methods. Every answer
is the spec's error, never a 500, and nothing is written."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from tests.registry.oci_helpers import assert_error, running_registry, sha256
from tests.support import oci
from tests.support.registry import PASSWORD, RegistryServer


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with running_registry(tmp_path_factory.mktemp("oci-errors") / "data") as server:
        with server.client("writer") as writer:
            oci.push(writer, "acme/web/app", oci.image([oci.layer({"a": b"a"})]), "v1")
        yield server


@pytest.fixture(scope="module")
def writer(reg: RegistryServer) -> Iterator[httpx.Client]:
    with reg.client("writer") as client:
        yield client


INVALID_NAMES = [
    "acme/web/App",  # uppercase
    "ACME/web/app",
    "acme/web/%2E%2E",  # ".." (escaped, or the client would resolve it)
    "acme/%2E%2E/web/app",
    "acme/web/.hidden",
    "acme//web/app",  # empty segment
    "acme/web/app/",
    "acme/web/" + "a" * 250,  # longer than 255
    "acme/web",  # no image part
    "acme/web/a___b",  # at most two underscores in a row
    "acme/web/under_score_",
    "acme/web/sp%20ace",
    "acme/web/app%0A",  # a trailing newline
    "acme/web%0A/app",
]
ENDPOINT_TEMPLATES = [
    ("GET", "/v2/{}/tags/list"),
    ("GET", "/v2/{}/manifests/v1"),
    ("PUT", "/v2/{}/manifests/v1"),
    ("DELETE", "/v2/{}/manifests/v1"),
    ("HEAD", "/v2/{}/blobs/" + sha256(b"x")),
    ("POST", "/v2/{}/blobs/uploads/"),
    ("GET", "/v2/{}/referrers/" + sha256(b"x")),
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names_are_name_invalid(writer: httpx.Client, name: str) -> None:
    for method, template in ENDPOINT_TEMPLATES:
        r = writer.request(method, template.format(name))
        assert_error(r, 400, "NAME_INVALID")


def test_names_at_the_length_limit(writer: httpx.Client) -> None:
    name = "acme/web/" + "a" * (255 - len("acme/web/"))
    r = writer.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code == 202
    assert_error(writer.post(f"/v2/{name}a/blobs/uploads/"), 400, "NAME_INVALID")


def test_missing_or_wrong_credentials(reg: RegistryServer) -> None:
    cases: list[dict[str, str]] = [
        {},
        {"Authorization": "Basic " + httpx.BasicAuth("writer", "wrong")._auth_header},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + "bm9jb2xvbg=="},  # "nocolon"
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Digest whatever"},
        {"Authorization": ""},
    ]
    with httpx.Client(base_url=reg.url) as client:
        for headers in cases:
            for path in ("/v2/", "/v2/acme/web/app/manifests/v1", "/v2/_catalog"):
                r = client.get(path, headers=headers)
                assert_error(r, 401, "UNAUTHORIZED")
                challenge = r.headers["WWW-Authenticate"]
                assert challenge.startswith(f'Bearer realm="{reg.url}/auth/token"')
                assert 'service="berth-registry"' in challenge
                assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        r = client.get("/v2/acme/web/app/manifests/v1")
        assert 'scope="repository:acme/web/app:pull"' in r.headers["WWW-Authenticate"]
        r = client.post("/v2/acme/web/app/blobs/uploads/")
        assert 'scope="repository:acme/web/app:push"' in r.headers["WWW-Authenticate"]


def _token(reg: RegistryServer, *scopes: str, user: str = "writer") -> str:
    r = httpx.get(
        f"{reg.url}/auth/token",
        params={"service": "berth-registry", "scope": list(scopes)},
        auth=(user, PASSWORD),
    )
    token: str = r.json()["token"]
    return token


def test_token_of_the_wrong_scope_is_401_insufficient_scope(reg: RegistryServer) -> None:
    pull_only = _token(reg, "repository:acme/web/app:pull")
    other_repo = _token(reg, "repository:acme/web/other:pull,push")
    with httpx.Client(base_url=reg.url) as client:

        def call(token: str, method: str, path: str) -> httpx.Response:
            return client.request(method, path, headers={"Authorization": f"Bearer {token}"})

        assert call(pull_only, "GET", "/v2/acme/web/app/manifests/v1").status_code == 200
        for token, method, path in (
            (pull_only, "POST", "/v2/acme/web/app/blobs/uploads/"),
            (pull_only, "DELETE", "/v2/acme/web/app/manifests/v1"),
            (other_repo, "GET", "/v2/acme/web/app/manifests/v1"),
            (pull_only, "GET", "/v2/_catalog"),
        ):
            r = call(token, method, path)
            assert_error(r, 401, "UNAUTHORIZED")
            assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
        # /v2/ only asks who you are.
        assert call(other_repo, "GET", "/v2/").status_code == 200


def test_unknown_endpoints_and_methods(writer: httpx.Client) -> None:
    # A spec code (the management API's "NOT_FOUND" is not one).
    assert_error(writer.get("/v2/acme/web/app/nothing/here"), 404, "UNSUPPORTED")
    for method, path in (
        ("POST", "/v2/acme/web/app/manifests/v1"),
        ("PATCH", "/v2/acme/web/app/tags/list"),
        ("PUT", "/v2/acme/web/app/blobs/" + sha256(b"x")),
        ("DELETE", "/v2/_catalog"),
        ("GET", "/v2/acme/web/app/blobs/uploads/"),
    ):
        assert_error(writer.request(method, path), 405, "UNSUPPORTED")


def test_bad_input_never_answers_500(writer: httpx.Client) -> None:
    """A sweep of odd requests: each gets a 4xx in the spec's shape."""
    names = ["acme/web/app", "acme/web/new", "acme/web/Bad"]
    refs = ["v1", "sha256:" + "0" * 64, "sha256:short", "..", "%00", "a" * 300]
    bodies: list[bytes] = [b"", b"{", b"null", b'{"schemaVersion": 2}', b"\x00" * 10]
    headers_list: list[dict[str, str]] = [
        {},
        {"Content-Type": oci.OCI_MANIFEST},
        {"Content-Type": oci.OCI_INDEX},
        {"Content-Range": "x-y"},
        {"Content-Range": "99999999999999999999999-99999999999999999999999"},
        {"Range": "bytes=99999999999999999999999-"},
    ]
    variants = itertools.cycle(itertools.product(bodies, headers_list))
    for name, ref in itertools.product(names, refs):
        for method, path in (
            ("PUT", f"/v2/{name}/manifests/{ref}"),
            ("GET", f"/v2/{name}/manifests/{ref}"),
            ("GET", f"/v2/{name}/blobs/{ref}"),
            ("PATCH", f"/v2/{name}/blobs/uploads/{ref}"),
            ("PUT", f"/v2/{name}/blobs/uploads/{ref}?digest={ref}"),
            ("POST", f"/v2/{name}/blobs/uploads/?digest={ref}"),
            ("POST", f"/v2/{name}/blobs/uploads/?mount={ref}&from={name}"),
            ("GET", f"/v2/{name}/tags/list?n={ref}&last={ref}"),
            ("GET", f"/v2/{name}/referrers/{ref}?artifactType={ref}"),
        ):
            # Each request gets the next body/header pair; the writes get all of them.
            pairs = (
                itertools.product(bodies, headers_list)
                if method in ("PUT", "PATCH") and ref == "v1"
                else [next(variants)]
            )
            for body, headers in pairs:
                r = writer.request(method, path, content=body, headers=headers)
                assert r.status_code < 500, (method, path, body, headers, r.text)
                if r.status_code >= 400:
                    assert r.json()["errors"][0]["code"]
    # Nothing of that was written (a mount that fell back opened sessions, no more).
    assert writer.get("/v2/acme/web/app/tags/list").json()["tags"] == ["v1"]
    assert writer.get("/v2/_catalog").json()["repositories"] == ["acme/web/app"]


def test_a_lock_held_too_long_answers_503_not_500(
    reg: RegistryServer, writer: httpx.Client
) -> None:
    """DESIGN.md race rule 5: a lock wait past a few seconds asks the client to retry."""
    db = sqlite3.connect(reg.data / "registry.db", isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")  # hold the write lock, as a long transaction would
        r = writer.post("/v2/acme/web/locked/blobs/uploads/")
        assert_error(r, 503, "TOOMANYREQUESTS")
        assert r.headers["Retry-After"] == "1"
        # Reads still go through meanwhile.
        assert writer.get("/v2/acme/web/app/tags/list").status_code == 200
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert writer.post("/v2/acme/web/locked/blobs/uploads/").status_code == 202
