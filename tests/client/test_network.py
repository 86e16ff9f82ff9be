"""A client closes every connection it opened, also those httpcore alone leaves open
to nobody: one whose request was cancelled during the TLS handshake, one that
connected after the client was closed (app/client/network.py). Real sockets: the
server sees each connection end."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from app.client.errors import ConnectionFailed
from app.client.transport import ConnectionSettings, build_client, send

# Only how long a broken test takes to fail: the end state is polled for.
CEILING_S = 60.0


def test_a_request_cancelled_in_its_tls_handshake_closes_its_connection() -> None:
    async def main() -> bytes:
        accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        accepted = asyncio.Queue()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accepted.put((reader, writer))

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = ConnectionSettings(f"https://127.0.0.1:{port}", verify_tls=False)
        try:
            async with build_client(settings) as http:
                request = asyncio.create_task(send(http, "GET", "/v2/", what="Checking"))
                reader, writer = await asyncio.wait_for(accepted.get(), CEILING_S)
                # The ClientHello arrived: the request now waits for the server's answer
                # inside the handshake, where it is cancelled.
                hello = await asyncio.wait_for(reader.read(5), CEILING_S)
                request.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await request
                # With the client still open, the server sees the connection end.
                rest = await asyncio.wait_for(reader.read(), CEILING_S)
                writer.close()
                await writer.wait_closed()
                return hello + rest
        finally:
            server.close()
            await server.wait_closed()

    received = asyncio.run(main())
    assert received[:1] == b"\x16"  # a TLS handshake record, then the end of the stream


def test_a_client_closed_while_a_request_connects_closes_that_connection() -> None:
    async def main() -> bytes:
        answered: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        answered = asyncio.Queue()

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await answered.put((reader, writer))

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        http = build_client(ConnectionSettings(f"http://127.0.0.1:{port}"))
        try:
            request = asyncio.create_task(send(http, "GET", "/v2/", what="Checking"))
            await asyncio.sleep(0)  # the request is on its way: connecting
            await http.aclose()  # as a window closing or a connection switched does
            # httpcore lets that request connect anyway; whatever it answers, its
            # connection must not outlive the client.
            with contextlib.suppress(ConnectionFailed):
                await request
            try:
                reader, writer = answered.get_nowait()
            except asyncio.QueueEmpty:
                return b""  # the connection closed before a request went through
            rest = await asyncio.wait_for(reader.read(), CEILING_S)
            writer.close()
            await writer.wait_closed()
            return rest
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(main()) == b""  # the server sees the end of the stream
