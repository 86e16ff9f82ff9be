"""A changed password, a removed user or a changed grant takes effect at the next
request, on every node: two registry processes share one metadata store, both have
the old credentials remembered (a Basic login within the minute) and have issued
tokens under them; the change is made through a third process (the command line)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.registry.oci_helpers import assert_error
from tests.support import oci
from tests.support.api import api
from tests.support.registry import PASSWORD, RegistryServer, admin_ok, standard_registry

NAME = "acme/web/app"
NEW_PASSWORD = "a-brand-new-password"


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[RegistryServer, RegistryServer]]:
    first = standard_registry(tmp_path / "data").start()
    second = RegistryServer(first.data)
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


def token(node: RegistryServer, user: str, password: str = PASSWORD) -> str:
    r = httpx.get(
        f"{node.url}/auth/token",
        params={"service": "berth-registry", "scope": f"repository:{NAME}:pull,push"},
        auth=(user, password),
    )
    assert r.status_code == 200, r.text
    value: str = r.json()["token"]
    return value


def bearer(node: RegistryServer, value: str) -> httpx.Client:
    return node.client(headers={"Authorization": f"Bearer {value}"})


def remembered(nodes: tuple[RegistryServer, ...], user: str) -> list[str]:
    """Sign in on every node (Basic, so each remembers it) and take a token there."""
    tokens = []
    for node in nodes:
        with node.client(user) as c:
            assert c.get("/v2/").status_code == 200
        with api(node, user) as c:
            assert c.get("/me").status_code == 200
        tokens.append(token(node, user))
        with bearer(node, tokens[-1]) as c:
            assert c.get(f"/v2/{NAME}/tags/list").status_code in (200, 404)
    return tokens


def test_a_changed_password_ends_remembered_logins_and_tokens_everywhere(
    nodes: tuple[RegistryServer, RegistryServer],
) -> None:
    tokens = remembered(nodes, "writer")
    admin_ok(nodes[0].data, "user", "passwd", "writer", "--password-stdin", password=NEW_PASSWORD)
    for node, issued in zip(nodes, tokens, strict=True):
        with node.client("writer") as old:
            assert_error(old.get("/v2/"), 401, "UNAUTHORIZED")
        with api(node, "writer") as old_api:
            assert old_api.get("/me").status_code == 401
        with bearer(node, issued) as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
            assert_error(c.get(f"/v2/{NAME}/tags/list"), 401, "UNAUTHORIZED")
        r = httpx.get(f"{node.url}/auth/token", auth=("writer", PASSWORD))
        assert r.status_code == 401, r.text
        with node.client("writer", NEW_PASSWORD) as new:
            assert new.get("/v2/").status_code == 200
        with bearer(node, token(node, "writer", NEW_PASSWORD)) as c:
            assert c.get("/v2/").status_code == 200


def test_a_removed_user_is_gone_everywhere_even_when_recreated(
    nodes: tuple[RegistryServer, RegistryServer],
) -> None:
    tokens = remembered(nodes, "reader")
    assert admin_ok(nodes[1].data, "user", "remove", "reader") == "user reader removed\n"
    for node, issued in zip(nodes, tokens, strict=True):
        with node.client("reader") as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
        with bearer(node, issued) as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
    # A namesake made later (same name, same password) is someone else: the old
    # tokens stay dead, and the old grants did not come back with the name.
    admin_ok(nodes[0].data, "user", "add", "reader", "--password-stdin", password=PASSWORD)
    for node, issued in zip(nodes, tokens, strict=True):
        with bearer(node, issued) as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
        with node.client("reader") as c:
            assert c.get("/v2/").status_code == 200
            assert_error(c.get(f"/v2/{NAME}/tags/list"), 401, "UNAUTHORIZED")


def test_a_changed_grant_counts_at_the_next_request_everywhere(
    nodes: tuple[RegistryServer, RegistryServer],
) -> None:
    image = oci.image([oci.layer({"grant": b"grant"})])
    with nodes[0].client("writer") as c:
        oci.push(c, NAME, image, "v1")
    tokens = remembered(nodes, "writer")
    admin_ok(nodes[0].data, "grant", "acme/web", "writer", "read")
    for node, issued in zip(nodes, tokens, strict=True):
        for client in (node.client("writer"), bearer(node, issued)):
            with client as c:
                assert c.get(f"/v2/{NAME}/manifests/v1").status_code == 200
                r = c.post(f"/v2/{NAME}/blobs/uploads/")
                assert r.status_code in (401, 403), r.text
    admin_ok(nodes[1].data, "grant", "acme/web", "writer", "none")
    admin_ok(nodes[1].data, "workspace", "member", "add", "acme", "writer")  # stays a member
    for node, issued in zip(nodes, tokens, strict=True):
        for client in (node.client("writer"), bearer(node, issued)):
            with client as c:
                assert_error(c.get(f"/v2/{NAME}/manifests/v1"), 401, "UNAUTHORIZED")
        with api(node, "writer") as c:
            images = c.get("/workspaces/acme/images").json()["items"]
            assert [i["full_name"] for i in images] == []
