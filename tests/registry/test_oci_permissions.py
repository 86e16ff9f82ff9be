"""Who may do what on the OCI Distribution API, and what the others learn.

A matrix: every endpoint x {anonymous, read, write, admin, member of another
workspace}, over HTTP Basic and over bearer tokens, against the expected answer.
Then existence leaks: to someone who may not read an image, an existing image, an
unknown image, an unknown repository and an unknown workspace all answer the same,
and a blob HEAD never reveals a digest stored for an image they cannot read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.registry.oci_helpers import assert_error, running_registry, sha256, upload
from tests.support import oci
from tests.support.registry import PASSWORD, RegistryServer

IMAGE = "acme/web/app"
ROLES = ("anonymous", "reader", "writer", "admin", "outsider")
USER = {"reader": "reader", "writer": "writer", "admin": "admin", "outsider": "outsider"}


@dataclass
class World:
    server: RegistryServer
    root: httpx.Client
    image: oci.Image


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with (
        running_registry(tmp_path_factory.mktemp("oci-perms") / "data") as server,
        server.client("root") as root,
    ):
        img = oci.image([oci.layer({"app": b"app"})])
        oci.push(root, IMAGE, img, "v1")
        yield World(server, root, img)


# Each endpoint: given the world, prepare what the request needs (as root) and return
# (method, path, params, body).
Request = tuple[str, str, dict[str, str], bytes | None]


def _session(w: World) -> str:
    location: str = w.root.post(f"/v2/{IMAGE}/blobs/uploads/").headers["Location"]
    return location


def _fresh_blob(w: World) -> str:
    return upload(w.root, IMAGE, uuid.uuid4().bytes)


def _fresh_manifest(w: World) -> str:
    img = oci.image([oci.layer({"f": uuid.uuid4().bytes})])
    oci.push(w.root, IMAGE, img)
    return img.digest


def _new_manifest(w: World) -> bytes:
    img = oci.image([oci.layer({"n": uuid.uuid4().bytes})])
    for blob in img.blobs:
        upload(w.root, IMAGE, blob.data)
    return img.manifest.data


DATA = b"some bytes"
ENDPOINTS: dict[str, Callable[[World], Request]] = {
    "base": lambda w: ("GET", "/v2/", {}, None),
    "catalog": lambda w: ("GET", "/v2/_catalog", {}, None),
    "tags": lambda w: ("GET", f"/v2/{IMAGE}/tags/list", {}, None),
    "manifest-get": lambda w: ("GET", f"/v2/{IMAGE}/manifests/v1", {}, None),
    "manifest-head": lambda w: ("HEAD", f"/v2/{IMAGE}/manifests/{w.image.digest}", {}, None),
    "manifest-put": lambda w: ("PUT", f"/v2/{IMAGE}/manifests/new", {}, _new_manifest(w)),
    "manifest-delete-tag": lambda w: (
        "DELETE",
        f"/v2/{IMAGE}/manifests/{_tag(w)}",
        {},
        None,
    ),
    "manifest-delete-digest": lambda w: (
        "DELETE",
        f"/v2/{IMAGE}/manifests/{_fresh_manifest(w)}",
        {},
        None,
    ),
    "referrers": lambda w: ("GET", f"/v2/{IMAGE}/referrers/{w.image.digest}", {}, None),
    "blob-get": lambda w: ("GET", f"/v2/{IMAGE}/blobs/{w.image.blobs[1].digest}", {}, None),
    "blob-head": lambda w: ("HEAD", f"/v2/{IMAGE}/blobs/{w.image.blobs[1].digest}", {}, None),
    "blob-delete": lambda w: ("DELETE", f"/v2/{IMAGE}/blobs/{_fresh_blob(w)}", {}, None),
    "upload-start": lambda w: ("POST", f"/v2/{IMAGE}/blobs/uploads/", {}, None),
    "upload-monolithic": lambda w: (
        "POST",
        f"/v2/{IMAGE}/blobs/uploads/",
        {"digest": sha256(DATA)},
        DATA,
    ),
    "upload-mount": lambda w: (
        "POST",
        f"/v2/{IMAGE}-copy/blobs/uploads/",
        {"mount": w.image.blobs[1].digest, "from": IMAGE},
        None,
    ),
    "upload-status": lambda w: ("GET", _session(w), {}, None),
    "upload-patch": lambda w: ("PATCH", _session(w), {}, DATA),
    "upload-put": lambda w: ("PUT", _session(w), {"digest": sha256(DATA)}, DATA),
    "upload-cancel": lambda w: ("DELETE", _session(w), {}, None),
}


def _tag(w: World) -> str:
    tag = f"t{uuid.uuid4().hex[:8]}"
    oci.push(w.root, IMAGE, w.image, tag)
    return tag


OK = {
    "base": 200,
    "catalog": 200,
    "tags": 200,
    "manifest-get": 200,
    "manifest-head": 200,
    "manifest-put": 201,
    "manifest-delete-tag": 202,
    "manifest-delete-digest": 202,
    "referrers": 200,
    "blob-get": 200,
    "blob-head": 200,
    "blob-delete": 202,
    "upload-start": 202,
    "upload-monolithic": 201,
    "upload-mount": 201,
    "upload-status": 204,
    "upload-patch": 202,
    "upload-put": 201,
    "upload-cancel": 204,
}
# Which permission on acme/web each endpoint needs (None: any signed-in user).
NEEDS = {
    "base": None,
    "catalog": None,
    "tags": "read",
    "manifest-get": "read",
    "manifest-head": "read",
    "referrers": "read",
    "blob-get": "read",
    "blob-head": "read",
}
LEVEL = {"reader": 1, "writer": 2, "admin": 3, "outsider": 0}


def expected(endpoint: str, role: str) -> int:
    if role == "anonymous":
        return 401
    need = NEEDS.get(endpoint, "write")
    if need is None:
        return OK[endpoint]
    if LEVEL[role] == 0:
        return 401  # cannot read: answered like a name that does not exist
    return OK[endpoint] if LEVEL[role] >= {"read": 1, "write": 2}[need] else 403


def _token(server: RegistryServer, user: str) -> str:
    scopes = [
        f"repository:{IMAGE}:pull,push,delete",
        f"repository:{IMAGE}-copy:pull,push",
        "registry:catalog:*",
    ]
    r = httpx.get(
        f"{server.url}/auth/token",
        params={"service": "berth-registry", "scope": scopes},
        auth=(user, PASSWORD),
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_permission_matrix(world: World, endpoint: str, role: str, scheme: str) -> None:
    method, path, params, body = ENDPOINTS[endpoint](world)
    headers = {"Content-Type": oci.OCI_MANIFEST} if endpoint == "manifest-put" else {}
    auth: httpx.Auth | None = None
    if role != "anonymous":
        if scheme == "basic":
            auth = httpx.BasicAuth(USER[role], PASSWORD)
        else:
            headers["Authorization"] = f"Bearer {_token(world.server, USER[role])}"
    with httpx.Client(base_url=world.server.url, auth=auth) as client:
        r = client.request(method, path, params=params, content=body, headers=headers)
    want = expected(endpoint, role)
    assert r.status_code == want, (endpoint, role, scheme, r.status_code, r.text)
    if want == 401:
        assert_error(r, 401, "UNAUTHORIZED")
        challenge = r.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="')
        assert 'service="berth-registry"' in challenge
    if want == 403:
        assert_error(r, 403, "DENIED")
        assert "write permission on acme/web is required" in r.json()["errors"][0]["message"]


def test_catalog_shows_each_role_only_what_it_may_read(world: World) -> None:
    for role in ("reader", "writer", "admin"):
        with world.server.client(USER[role]) as client:
            assert IMAGE in client.get("/v2/_catalog").json()["repositories"]
    with world.server.client("outsider") as client:
        assert client.get("/v2/_catalog").json()["repositories"] == []


# existence leaks -------------------------------------------------------------------------


def _normalized(r: httpx.Response, name: str) -> tuple[int, str, str]:
    return (
        r.status_code,
        r.text.replace(name, "NAME"),
        r.headers.get("WWW-Authenticate", "").replace(name, "NAME"),
    )


NAMES = ["acme/web/app", "acme/web/absent", "acme/absent/app", "absent/web/app"]
PROBES: list[tuple[str, str]] = [
    ("GET", "/v2/{name}/tags/list"),
    ("GET", "/v2/{name}/manifests/v1"),
    ("HEAD", "/v2/{name}/manifests/v1"),
    ("PUT", "/v2/{name}/manifests/v1"),
    ("DELETE", "/v2/{name}/manifests/v1"),
    ("GET", "/v2/{name}/blobs/{blob}"),
    ("HEAD", "/v2/{name}/blobs/{blob}"),
    ("DELETE", "/v2/{name}/blobs/{blob}"),
    ("POST", "/v2/{name}/blobs/uploads/"),
    ("GET", "/v2/{name}/blobs/uploads/{session}"),
    ("GET", "/v2/{name}/referrers/{manifest}"),
]


@pytest.mark.parametrize("user", [None, "outsider"])
def test_no_existence_leaks_to_other_workspaces(world: World, user: str | None) -> None:
    session = _session(world).rsplit("/", 1)[1]
    with world.server.client(user) as client:
        for method, template in PROBES:
            answers = set()
            for name in NAMES:
                path = template.format(
                    name=name,
                    blob=world.image.blobs[1].digest,
                    session=session,
                    manifest=world.image.digest,
                )
                r = client.request(method, path)
                answers.add(_normalized(r, name))
            assert len(answers) == 1, (method, template, answers)
            (status, _, _) = answers.pop()
            assert status == 401


def test_blob_head_does_not_reveal_blobs_of_unreadable_images(world: World) -> None:
    secret = oci.layer({"secret": uuid.uuid4().bytes})
    upload(world.root, "acme/api/secret", secret.data)  # reader has no access to acme/api
    upload(world.root, "globex/tools/vault", secret.data)
    readable = f"acme/web/r-{uuid.uuid4().hex[:6]}"
    oci.push(world.root, readable, world.image, "v1")
    unknown = sha256(uuid.uuid4().bytes)
    for user, name in (("reader", readable), ("reader", IMAGE), ("outsider", "globex/tools/x")):
        with world.server.client(user) as client:
            for method in ("HEAD", "GET"):
                stored = client.request(method, f"/v2/{name}/blobs/{secret.digest}")
                absent = client.request(method, f"/v2/{name}/blobs/{unknown}")
                assert_error(stored, 404, "BLOB_UNKNOWN")
                assert _normalized(stored, secret.digest) == _normalized(absent, unknown)
            # Nor can a mount pull it in from an image the user cannot read.
            r = client.post(
                f"/v2/{name}/blobs/uploads/",
                params={"mount": secret.digest, "from": "acme/api/secret"},
            )
            assert r.status_code in (202, 403)
            assert_error(client.head(f"/v2/{name}/blobs/{secret.digest}"), 404, "BLOB_UNKNOWN")
