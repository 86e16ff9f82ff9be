"""The token endpoint and bearer tokens: several scopes (space-separated or
repeated), the intersection of requested and held actions, short lifetimes, the
OAuth2 password grant; expired, forged and tampered tokens are refused; a token only
narrows what the store allows. Passwords are stored as argon2id hashes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select

from app.registry.db import schema as s
from app.registry.service import Registry
from tests.registry.oci_helpers import assert_error, running_registry
from tests.support import oci
from tests.support.registry import PASSWORD, RegistryServer


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with running_registry(tmp_path_factory.mktemp("auth") / "data") as server:
        with server.client("root") as root:
            oci.push(root, "acme/web/app", oci.image([oci.layer({"t": b"t"})]), "v1")
        yield server


# user -> (id, credential stamp), which a valid token names (filled by ``secret``).
IDENTITIES: dict[str, tuple[int, str]] = {}


@pytest.fixture(scope="module")
def secret(reg: RegistryServer) -> bytes:
    registry = Registry.open(reg.data)
    try:
        with registry.db.read() as conn:
            for row in conn.execute(
                select(s.users.c.name, s.users.c.id, s.users.c.credential_stamp)
            ):
                IDENTITIES[row.name] = (row.id, row.credential_stamp)
        return registry.auth.secret
    finally:
        registry.close()


def _token(reg: RegistryServer, params: Any, user: str = "reader") -> dict[str, Any]:
    r = httpx.get(f"{reg.url}/auth/token", params=params, auth=(user, PASSWORD))
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = r.json()
    return body


def _access(token: str) -> dict[str, list[str]]:
    claims = jwt.decode(token, options={"verify_signature": False})
    return {f"{a['type']}:{a['name']}": a["actions"] for a in claims["access"]}


def test_several_scopes_space_separated_and_repeated(reg: RegistryServer) -> None:
    params = [
        ("service", "berth-registry"),
        ("scope", "repository:acme/web/app:pull,push registry:catalog:*"),
        ("scope", "repository:acme/api/svc:pull"),
        ("scope", "repository:globex/tools/x:pull"),
    ]
    body = _token(reg, params, user="reader")
    assert body["token"] == body["access_token"]
    assert _access(body["token"]) == {
        # reader holds read on acme/web: push is dropped
        "repository:acme/web/app": ["pull"],
        "registry:catalog": ["*"],
        # nothing on acme/api nor on another workspace
        "repository:acme/api/svc": [],
        "repository:globex/tools/x": [],
    }


@pytest.mark.parametrize(
    ("user", "requested", "granted"),
    [
        ("reader", "pull,push,delete", ["pull"]),
        ("writer", "pull,push,delete", ["pull", "push", "delete"]),
        ("writer", "*", ["pull", "push", "delete"]),
        ("admin", "*", ["pull", "push", "delete", "*"]),
        ("wsadmin", "push", ["push"]),
        ("outsider", "pull", []),
        ("root", "pull,bogus", ["pull"]),
    ],
)
def test_granted_actions_are_the_intersection(
    reg: RegistryServer, user: str, requested: str, granted: list[str]
) -> None:
    body = _token(reg, {"scope": f"repository:acme/web/app:{requested}"}, user=user)
    assert _access(body["token"]) == {"repository:acme/web/app": granted}


def test_tokens_are_short_lived_and_signed(reg: RegistryServer, secret: bytes) -> None:
    body = _token(reg, {"service": "berth-registry", "scope": "repository:acme/web/app:pull"})
    claims = jwt.decode(body["token"], secret, algorithms=["HS256"], audience="berth-registry")
    assert claims["sub"] == "reader"
    assert claims["exp"] - claims["iat"] == body["expires_in"] == 300
    assert abs(claims["iat"] - time.time()) < 3600  # a sane clock, not a speed claim
    assert body["issued_at"].endswith("Z")


def test_password_grant(reg: RegistryServer) -> None:
    form = {
        "grant_type": "password",
        "username": "writer",
        "password": PASSWORD,
        "service": "berth-registry",
        "scope": "repository:acme/web/app:pull,push",
    }
    r = httpx.post(f"{reg.url}/auth/token", data=form)
    assert r.status_code == 200
    assert _access(r.json()["access_token"]) == {"repository:acme/web/app": ["pull", "push"]}
    bad = httpx.post(f"{reg.url}/auth/token", data={**form, "password": "nope-nope"})
    assert_error(bad, 401, "UNAUTHORIZED")
    other = httpx.post(f"{reg.url}/auth/token", data={**form, "grant_type": "refresh_token"})
    assert_error(other, 400, "UNSUPPORTED")
    as_json = httpx.post(f"{reg.url}/auth/token", json=form)
    assert_error(as_json, 400, "UNSUPPORTED")


def test_token_endpoint_requires_credentials(reg: RegistryServer) -> None:
    url = f"{reg.url}/auth/token"
    scope = {"scope": "repository:acme/web/app:pull"}
    for auth in (None, ("reader", "wrong-password"), ("nobody", PASSWORD)):
        r = httpx.get(url, params=scope, auth=auth)
        assert_error(r, 401, "UNAUTHORIZED")
        assert r.headers["WWW-Authenticate"].startswith("Basic ")
    r = httpx.get(url, params=scope, headers={"Authorization": "Bearer whatever"})
    assert_error(r, 401, "UNAUTHORIZED")


def _claims(user: str, actions: list[str], **override: Any) -> dict[str, Any]:
    now = int(time.time())
    uid, stamp = IDENTITIES.get(user, (0, ""))
    claims = {
        "iss": "berth-registry",
        "sub": user,
        "uid": uid,
        "stamp": stamp,
        "aud": "berth-registry",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
        "access": [{"type": "repository", "name": "acme/web/app", "actions": actions}],
    }
    return claims | override


def _get(reg: RegistryServer, token: str, path: str = "/v2/acme/web/app/manifests/v1") -> Any:
    return httpx.get(reg.url + path, headers={"Authorization": f"Bearer {token}"})


def test_expired_forged_and_tampered_tokens_are_refused(reg: RegistryServer, secret: bytes) -> None:
    good = jwt.encode(_claims("reader", ["pull"]), secret, algorithm="HS256")
    assert _get(reg, good).status_code == 200
    long_ago = int(time.time()) - 3600
    header, payload, signature = good.split(".")
    other_payload = jwt.encode(_claims("root", ["pull"]), "x" * 32, algorithm="HS256").split(".")[1]
    refused = {
        "expired": jwt.encode(
            _claims("reader", ["pull"], iat=long_ago, nbf=long_ago, exp=long_ago + 300),
            secret,
            algorithm="HS256",
        ),
        "not yet valid": jwt.encode(
            _claims("reader", ["pull"], nbf=int(time.time()) + 3600), secret, algorithm="HS256"
        ),
        "other secret": jwt.encode(_claims("reader", ["pull"]), b"guessed-" * 8, algorithm="HS256"),
        "alg none": jwt.encode(_claims("reader", ["pull"]), None, algorithm="none"),
        "tampered": f"{header}.{other_payload}.{signature}",
        "no signature": f"{header}.{payload}.",
        "unknown user": jwt.encode(_claims("ghost", ["pull"]), secret, algorithm="HS256"),
        "garbage": "a.b.c",
    }
    for what, token in refused.items():
        for path in ("/v2/", "/v2/acme/web/app/manifests/v1"):
            r = _get(reg, token, path)
            assert r.status_code == 401, (what, path, r.text)
            assert r.headers["WWW-Authenticate"].startswith("Bearer realm=")


def test_a_token_only_narrows_what_the_store_allows(reg: RegistryServer, secret: bytes) -> None:
    # Correctly signed, but granting push to a user who only holds read: still a 403.
    token = jwt.encode(_claims("reader", ["pull", "push"]), secret, algorithm="HS256")
    r = httpx.post(
        f"{reg.url}/v2/acme/web/app/blobs/uploads/", headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(r, 403, "DENIED")
    # And an outsider's self-made grant reads nothing.
    token = jwt.encode(_claims("outsider", ["pull"]), secret, algorithm="HS256")
    assert_error(_get(reg, token), 401, "UNAUTHORIZED")


def test_a_mount_whose_token_lacks_pull_on_the_source_asks_for_both_scopes(
    reg: RegistryServer,
) -> None:
    """As Distribution does: a cross-repository mount needs pull on ``from``; a token
    without it gets 401 with a challenge naming both scopes, so the client fetches a
    token that can mount (instead of uploading a layer the registry already holds).
    A caller who may not read ``from`` could not get such a token: that mount falls
    back to an upload session (202), saying nothing about the source."""
    layer = oci.layer({"mounted": b"m" * 100})
    with reg.client("root") as root:
        oci.push(root, "acme/api/src", oci.image([layer]), "v1")
    dest, source = "acme/web/dest", "acme/api/src"
    params = {"mount": layer.digest, "from": source}

    def post(token: str) -> httpx.Response:
        return httpx.post(
            f"{reg.url}/v2/{dest}/blobs/uploads/",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )

    # wsadmin may read acme/api: the narrow token is answered with a challenge.
    narrow = _token(reg, {"scope": f"repository:{dest}:pull,push"}, user="wsadmin")["token"]
    r = post(narrow)
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.headers["WWW-Authenticate"] == (
        f'Bearer realm="{reg.url}/auth/token",service="berth-registry",'
        f'scope="repository:{dest}:pull,push repository:{source}:pull",'
        'error="insufficient_scope"'
    )
    challenge = r.headers["WWW-Authenticate"]
    scope = challenge.split('scope="')[1].split('"')[0]
    wide = _token(reg, {"scope": scope}, user="wsadmin")["token"]
    assert _access(wide)[f"repository:{source}"] == ["pull"]
    r = post(wide)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == layer.digest

    # writer may not read acme/api: no token could mount, so it uploads instead.
    narrow = _token(reg, {"scope": f"repository:{dest}:pull,push"}, user="writer")["token"]
    r = post(narrow)
    assert r.status_code == 202, r.text
    assert "/blobs/uploads/" in r.headers["Location"]


def test_passwords_are_stored_as_argon2id(reg: RegistryServer) -> None:
    registry = Registry.open(reg.data)
    try:
        with registry.db.read() as conn:
            hashes = conn.execute(select(s.users.c.name, s.users.c.password_hash)).all()
    finally:
        registry.close()
    assert hashes
    for name, password_hash in hashes:
        assert password_hash.startswith("$argon2id$"), name
        assert PASSWORD not in password_hash


def test_basic_challenge_mode(registry_factory: Any) -> None:
    server = registry_factory(extra_args=["--auth-challenge", "basic"])
    r = httpx.get(f"{server.url}/v2/")
    assert_error(r, 401, "UNAUTHORIZED")
    assert r.headers["WWW-Authenticate"] == 'Basic realm="berth-registry"'
    assert httpx.get(f"{server.url}/v2/", auth=("reader", PASSWORD)).status_code == 200
    # Tokens still work for clients that ask for one.
    token = _token(server, {"scope": "repository:acme/web/app:pull"})["token"]
    assert _get(server, token, "/v2/").status_code == 200
