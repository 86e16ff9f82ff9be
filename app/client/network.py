"""The connections under every client: httpcore's own, except that the client
closes every connection it opened, whatever interrupted the request using it.

httpcore (1.0.9) leaves a connection open, to nobody, in two cases the app meets
every day (a selection moved on, a connection switched, a scan stopped, a window
closed), more often on a busy machine where each step takes longer:

* a request cancelled during the TLS handshake: the TCP stream is closed when the
  handshake fails with an ``Exception`` only, and ``asyncio.CancelledError`` is a
  ``BaseException``. Neither the connection (it has none yet) nor the pool knows
  of the stream.
* a client closed while a request is connecting: the pool closes the connections
  it has, the request's connection completes afterwards, answers, and goes back to
  a pool that no longer lists it.

Such a socket stays registered with the event loop until the loop is collected,
then warns "unclosed transport/socket" (seen as a ResourceWarning in a later test's
teardown in full-suite runs). :class:`ClosingBackend` keeps every stream it opened
until it is closed: a cancelled or failed handshake closes its stream at once,
closing the transport closes whatever is left, and a stream connected after that
is closed on arrival (its request fails: the client is closed).
"""

# The timeout parameters are httpcore's interface, which these classes implement.
# ruff: noqa: ASYNC109

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx


class _ClosingStream(httpcore.AsyncNetworkStream):
    """A stream :class:`ClosingBackend` keeps until it is closed."""

    def __init__(self, stream: httpcore.AsyncNetworkStream, backend: ClosingBackend) -> None:
        self._stream = stream
        self._backend = backend

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        self._backend.open_streams.discard(self)
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            tls = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        except BaseException:
            # aclose() closes the transport before its first await, so the socket
            # is closed even if this task is cancelled again while it finishes.
            await self.aclose()
            raise
        # The TLS stream runs over the same socket and is what httpcore closes.
        self._backend.open_streams.discard(self)
        return await self._backend.keep(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class ClosingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's backend, keeping what it opened (see the module docstring)."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._backend = backend if backend is not None else httpcore.AnyIOBackend()
        self.open_streams: set[_ClosingStream] = set()
        self.closed = False

    async def keep(self, stream: httpcore.AsyncNetworkStream) -> _ClosingStream:
        if self.closed:
            await stream.aclose()
            raise httpcore.ConnectError("the client was closed while this connection opened")
        kept = _ClosingStream(stream, self)
        self.open_streams.add(kept)
        return kept

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(
            host,
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )
        return await self.keep(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        return await self.keep(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)

    async def aclose(self) -> None:
        """Close every stream still open; streams connected later close on arrival."""
        self.closed = True
        while self.open_streams:
            await self.open_streams.pop().aclose()


class ClosingTransport(httpx.AsyncHTTPTransport):
    """httpx's transport for direct connections, its pool on :class:`ClosingBackend`.

    httpx takes no network backend, so the pool it built is replaced by one with
    the same settings (``_pool`` is what its ``handle_async_request`` sends through;
    tests/client/test_network.py fails if a new httpx stops using it).
    """

    def __init__(self, verify: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=verify, limits=limits)
        self.backend = ClosingBackend()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.backend.aclose()
