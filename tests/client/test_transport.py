"""Transport: what an admin is told when a request fails, for each way it can fail.
Network failures are real where a real socket can produce them (refused,
unresolvable, untrusted TLS); statuses and bodies come from httpx.MockTransport."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from app.client.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ServiceUnavailable,
    TlsError,
    Unsupported,
)
from app.client.transport import (
    USER_AGENT,
    ConnectionSettings,
    build_client,
    json_object,
    send,
    ssl_context,
)
from tests.support.distribution import DistributionServer

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def get(handler: Callable[[httpx.Request], httpx.Response], url: str = "/v2/") -> None:
    settings = ConnectionSettings("https://registry.test")
    async with build_client(settings, transport=httpx.MockTransport(handler)) as http:
        await send(http, "GET", url, what="Listing")


def test_statuses_map_to_error_classes_with_the_registry_message() -> None:
    cases = [
        (401, AuthenticationFailed),
        (403, PermissionDenied),
        (404, NotFound),
        (405, Unsupported),
        (500, ServiceUnavailable),
        (502, ServiceUnavailable),
        (429, ServiceUnavailable),
    ]
    for status, kind in cases:
        body = {"errors": [{"code": "SOME_CODE", "message": f"told {status}", "detail": None}]}
        with pytest.raises(kind) as caught:
            run(get(lambda _r, s=status, b=body: httpx.Response(s, json=b)))
        assert caught.value.status == status
        assert caught.value.code == "SOME_CODE"
        assert caught.value.message.startswith("Listing: registry.test")
        assert f"told {status}" in caught.value.message


def test_berth_error_body_and_retry_after() -> None:
    body = {
        "error": {
            "code": "FORBIDDEN",
            "message": "admin permission on acme/web is required",
            "detail": {"required": "admin", "repository": "acme/web"},
        }
    }
    with pytest.raises(PermissionDenied) as denied:
        run(get(lambda _r: httpx.Response(403, json=body)))
    assert denied.value.required == "admin"
    assert denied.value.repository == "acme/web"
    with pytest.raises(ServiceUnavailable) as busy:
        run(get(lambda _r: httpx.Response(503, headers={"Retry-After": "7"}, text="busy")))
    assert busy.value.retry_after == 7.0
    assert "busy or unavailable" in busy.value.message


def test_non_json_error_body_still_gives_a_sentence() -> None:
    with pytest.raises(ServiceUnavailable, match="internal error"):
        run(get(lambda _r: httpx.Response(500, text="<html>oops</html>")))


def test_timeouts_and_broken_connections() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ConnectionFailed, match="timed out waiting for an answer"):
        run(get(timeout))

    def cut(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    with pytest.raises(ProtocolError, match="broke off"):
        run(get(cut))


def test_content_length_lie_is_caught() -> None:
    short = httpx.Response(200, headers={"Content-Length": "400"}, content=b'{"a": 1}')
    with pytest.raises(ProtocolError, match="announced 400 bytes but sent 8"):
        run(get(lambda _r: short))


def test_malformed_json() -> None:
    async def scenario() -> None:
        settings = ConnectionSettings("https://registry.test")
        transport = httpx.MockTransport(lambda _r: httpx.Response(200, content=b"{not json"))
        async with build_client(settings, transport=transport) as http:
            response = await send(http, "GET", "/v2/_catalog", what="Listing")
            json_object(response, what="Listing")

    with pytest.raises(ProtocolError, match="not JSON"):
        run(scenario())


def test_user_agent_is_sent() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["user-agent"])
        return httpx.Response(200, json={})

    run(get(handler))
    assert seen == [USER_AGENT]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_and_unresolvable_with_real_sockets() -> None:
    async def attempt(url: str) -> None:
        async with build_client(ConnectionSettings(url, connect_timeout_s=5)) as http:
            await send(http, "GET", "/v2/", what="Connecting")

    with pytest.raises(ConnectionFailed, match="refused the connection"):
        run(attempt(f"http://127.0.0.1:{_closed_port()}"))
    with pytest.raises(ConnectionFailed, match="cannot be resolved"):
        run(attempt("https://no-such-host.invalid"))


def test_tls_untrusted_then_trusted_with_ca_bundle_then_unverified(tmp_path: Path) -> None:
    server = DistributionServer(tmp_path / "dist", auth=False).start()
    try:
        assert server.ca_file is not None

        async def attempt(settings: ConnectionSettings) -> int:
            async with build_client(settings) as http:
                return (await send(http, "GET", "/v2/", what="Connecting")).status_code

        with pytest.raises(TlsError, match="not trusted"):
            run(attempt(ConnectionSettings(server.url)))
        assert run(attempt(ConnectionSettings(server.url, ca_bundle=server.ca_file))) == 200
        assert run(attempt(ConnectionSettings(server.url, verify_tls=False))) == 200
    finally:
        server.stop()


def test_bad_ca_bundle_is_a_tls_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(TlsError, match="cannot be used"):
        ssl_context(True, bogus)
    assert ssl_context(False).verify_mode == ssl.CERT_NONE
