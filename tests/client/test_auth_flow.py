"""RegistryAuth against a fake token service (httpx.MockTransport): challenges,
the token cache, expiry, rejected tokens, realms on other hosts."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import pytest

from app.client import auth as auth_module
from app.client.auth import RegistryAuth, parse_challenges, token_actions
from app.client.errors import AuthenticationFailed, PermissionDenied, ServiceUnavailable
from app.client.transport import ConnectionSettings, build_client, send

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def jwt_like(access: list[dict[str, object]]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"access": access}).encode()).decode()
    return f"e30.{payload.rstrip('=')}.sig"


@dataclass
class FakeRegistry:
    """A registry on registry.test whose token service lives on ``realm``."""

    realm: str = "https://auth.test/token"
    expires_in: int | None = 300
    grant: tuple[str, ...] = ("pull",)
    valid: set[str] = field(default_factory=set)
    token_calls: list[httpx.Request] = field(default_factory=list)
    issued: int = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        realm = httpx.URL(self.realm)
        if (request.url.host, request.url.path) == (realm.host, realm.path):
            self.token_calls.append(request)
            if (
                request.headers.get("authorization")
                != "Basic " + base64.b64encode(b"alice:pw").decode()
            ):
                return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED"}]})
            self.issued += 1
            scopes = request.url.params.get_list("scope")
            name = scopes[0].split(":")[1] if scopes else ""
            token = jwt_like([{"type": "repository", "name": name, "actions": list(self.grant)}])
            token += str(self.issued)
            self.valid.add(token)
            body: dict[str, object] = {"token": token}
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
            return httpx.Response(200, json=body)
        sent = request.headers.get("authorization", "")
        needed = "push" if request.method in ("PUT", "POST") else "pull"
        scope = f"repository:team/app:{'pull,push' if needed == 'push' else 'pull'}"
        challenge = f'Bearer realm="{self.realm}",service="fake",scope="{scope}"'
        if not sent.startswith("Bearer ") or sent[7:] not in self.valid:
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if needed not in self.grant:
            return httpx.Response(
                401, headers={"WWW-Authenticate": challenge + ',error="insufficient_scope"'}
            )
        return httpx.Response(200, json={"name": "team/app", "tags": ["v1"]})


def client_for(fake: FakeRegistry, password: str = "pw", url: str = "https://registry.test"):  # type: ignore[no-untyped-def]
    auth = RegistryAuth("alice", password)
    return auth, build_client(
        ConnectionSettings(url), auth=auth, transport=httpx.MockTransport(fake.handler)
    )


SCOPE = {"berth_scope": "repository:team/app:pull"}


def test_challenge_then_cached_token_goes_out_at_once() -> None:
    fake = FakeRegistry()

    async def scenario() -> None:
        auth, http = client_for(fake)
        async with http:
            for _ in range(3):
                r = await send(http, "GET", "/v2/team/app/tags/list", what="t", extensions=SCOPE)
                assert r.status_code == 200
        assert auth.token_requests == 1
        assert auth.granted("repository:team/app:pull") == {
            "repository:team/app": frozenset({"pull"})
        }

    run(scenario())
    assert len(fake.token_calls) == 1
    assert fake.token_calls[0].url.params.get_list("scope") == ["repository:team/app:pull"]
    assert fake.token_calls[0].url.params["service"] == "fake"


def test_expired_token_is_refreshed_and_short_ttl_is_usable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeRegistry(expires_in=4)  # shorter than the refresh margin
    now = [1000.0]
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: now[0])

    async def scenario() -> None:
        auth, http = client_for(fake)
        async with http:
            await send(http, "GET", "/v2/team/app/tags/list", what="t", extensions=SCOPE)
            await send(http, "GET", "/v2/team/app/tags/list", what="t", extensions=SCOPE)
            assert auth.token_requests == 1  # not "expired on arrival"
            now[0] += 60
            await send(http, "GET", "/v2/team/app/tags/list", what="t", extensions=SCOPE)
            assert auth.token_requests == 2

    run(scenario())


def test_revoked_cached_token_is_fetched_again_once() -> None:
    fake = FakeRegistry()

    async def scenario() -> None:
        auth, http = client_for(fake)
        async with http:
            await send(http, "GET", "/v2/team/app/tags/list", what="t", extensions=SCOPE)
            fake.valid.clear()  # the registry restarted with a new key
            r = await send(http, "GET", "/v2/team/app/tags/list", what="t", extensions=SCOPE)
            assert r.status_code == 200
            assert auth.token_requests == 2

    run(scenario())


def test_insufficient_scope_does_not_loop_and_is_a_permission_error() -> None:
    fake = FakeRegistry(grant=("pull",))

    async def scenario() -> None:
        auth, http = client_for(fake)
        async with http:
            with pytest.raises(PermissionDenied, match="does not let this account"):
                await send(
                    http,
                    "PUT",
                    "/v2/team/app/manifests/v1",
                    what="Pushing",
                    content=b"{}",
                    extensions={"berth_scope": "repository:team/app:push"},
                )
            assert auth.token_requests == 1

    run(scenario())


def test_wrong_password_and_token_service_down() -> None:
    async def scenario(fake: FakeRegistry, password: str) -> None:
        _auth, http = client_for(fake, password)
        async with http:
            await send(http, "GET", "/v2/team/app/tags/list", what="t", extensions=SCOPE)

    with pytest.raises(AuthenticationFailed, match=r"Getting a token from auth\.test"):
        run(scenario(FakeRegistry(), "wrong"))

    class Down(FakeRegistry):
        def handler(self, request: httpx.Request) -> httpx.Response:
            if request.url.host == "auth.test":
                return httpx.Response(503, text="maintenance")
            return super().handler(request)

    with pytest.raises(ServiceUnavailable, match=r"auth\.test"):
        run(scenario(Down(), "pw"))


def test_password_never_sent_in_clear_to_another_host() -> None:
    fake = FakeRegistry(realm="http://auth.test/token")
    with pytest.raises(AuthenticationFailed, match="clear text"):
        run(_one(fake))
    assert fake.token_calls == []
    # Plain HTTP to the registry's own host (a local test registry) is allowed.
    local = FakeRegistry(realm="http://registry.test/token")
    run(_one(local, url="http://registry.test"))
    assert len(local.token_calls) == 1


async def _one(fake: FakeRegistry, url: str = "https://registry.test") -> None:
    _auth, http = client_for(fake, url=url)
    async with http:
        await send(http, "GET", "/v2/team/app/tags/list", what="t", extensions=SCOPE)


def test_challenge_scope_alias_avoids_a_second_round_trip() -> None:
    fake = FakeRegistry()
    hits: list[str] = []
    inner = fake.handler

    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(f"{request.url.host} {request.headers.get('authorization', '-')[:6]}")
        return inner(request)

    async def scenario() -> None:
        auth = RegistryAuth("alice", "pw")
        settings = ConnectionSettings("https://registry.test")
        async with build_client(settings, auth=auth, transport=httpx.MockTransport(handler)) as h:
            other = {"berth_scope": "repository:team/app:pull,list"}  # not the challenged one
            await send(h, "GET", "/v2/team/app/tags/list", what="t", extensions=other)
            hits.clear()
            await send(h, "GET", "/v2/team/app/tags/list", what="t", extensions=other)

    run(scenario())
    assert hits == ["registry.test Bearer"]


def test_parse_challenges_and_opaque_tokens() -> None:
    [bearer, basic] = parse_challenges(
        'Bearer realm="https://a/t",service="s",scope="repository:x:pull,push", Basic realm="r"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params["scope"] == "repository:x:pull,push"
    assert basic.params == {"realm": "r"}
    assert token_actions("opaque-token") is None
