"""The bearer-token flow against Berth's own registry, through the generic OCI
client (the "OCI registry" connection kind pointed at a Berth registry)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from app.client import capabilities as caps
from app.client.auth import RegistryAuth
from app.client.errors import AuthenticationFailed, PermissionDenied
from app.client.oci import OciClient
from app.client.oci_delete import delete_digest, delete_tag
from app.client.oci_details import DetailsLoader
from app.client.transport import ConnectionSettings
from tests.support import oci
from tests.support.registry import PASSWORD, RegistryServer

T = TypeVar("T")
IMG = oci.image([oci.random_layer(30_000, "tok-base"), oci.random_layer(5_000, "tok-app")])


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def connect(registry: RegistryServer, user: str, password: str = PASSWORD) -> OciClient:
    return OciClient.connect(ConnectionSettings(registry.url), user, password)


def seed(registry: RegistryServer) -> None:
    with registry.client("writer") as http:
        oci.push(http, "acme/web/app", IMG, "v1")
        oci.push(http, "acme/web/app", IMG, "v2")


def test_token_flow_browse_cache_and_delete(registry: RegistryServer) -> None:
    seed(registry)

    async def scenario() -> None:
        async with connect(registry, "writer") as client:
            auth = client.http.auth
            assert isinstance(auth, RegistryAuth)
            assert await client.all_repositories() == ["acme/web/app"]
            assert auth.scheme == "bearer"
            assert sorted(await client.all_tags("acme/web/app")) == ["v1", "v2"]
            fetched_before = auth.token_requests
            details = await DetailsLoader(client).tag("acme/web/app", "v1")
            assert details.digest == IMG.digest
            assert details.size == IMG.compressed_size
            # Manifest and config reads reuse the cached pull token.
            assert auth.token_requests == fetched_before
            granted = auth.granted("repository:acme/web/app:pull")
            assert granted is not None
            assert "pull" in granted["repository:acme/web/app"]

            found = await caps.capabilities(client)
            assert (found.catalog, found.deletes, found.tag_delete, found.referrers) == (
                True,
                True,
                True,
                True,
            )
            assert found.notes == ()

            await delete_tag(client, "acme/web/app", "v1", expected_digest=IMG.digest)
            assert await client.all_tags("acme/web/app") == ["v2"]

    run(scenario())


def test_token_flow_permissions_and_bad_password(registry: RegistryServer) -> None:
    seed(registry)

    async def scenario() -> None:
        async with connect(registry, "reader") as client:
            assert await client.all_tags("acme/web/app") == ["v1", "v2"]
            # The token service grants the intersection (pull only): a clear 403,
            # one token fetch for the delete scope, no loop, nothing deleted.
            auth = client.http.auth
            assert isinstance(auth, RegistryAuth)
            before = auth.token_requests
            with pytest.raises(PermissionDenied) as denied:
                await delete_digest(client, "acme/web/app", IMG.digest)
            assert denied.value.required == "write"
            assert denied.value.repository == "acme/web"
            assert auth.token_requests - before == 1
            assert sorted(await client.all_tags("acme/web/app")) == ["v1", "v2"]

        async with connect(registry, "outsider") as client:
            # A repository this user may not see answers like one that does not exist.
            with pytest.raises(PermissionDenied, match="does not let this account"):
                await client.all_tags("acme/web/app")

        async with connect(registry, "writer", "wrong-password") as client:
            with pytest.raises(AuthenticationFailed, match="Getting a token"):
                await client.all_tags("acme/web/app")

    run(scenario())
