"""The server-sent-events reader: the format, reconnecting with backoff (and the
server's hints), final errors, and cancellation closing the response. The network is
``httpx.MockTransport``; tests/client/test_events_registry.py reads a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from app.client.errors import (
    AuthenticationFailed,
    ClientError,
    ConnectionFailed,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ServiceUnavailable,
)
from app.client.events import Backoff, EventStream, ServerEvent, SseParser
from app.client.transport import ConnectionSettings, build_client

URL = "/api/v1/workspaces/acme/events"
SSE = {"content-type": "text/event-stream; charset=utf-8"}
NO_JITTER = Backoff(initial_s=1.0, max_s=8.0, jitter=0.0)


def parse(text: str) -> list[ServerEvent]:
    parser = SseParser()
    out = []
    for line in text.split("\n"):
        event = parser.feed(line.rstrip("\r"))
        if event is not None:
            out.append(event)
    return out


def test_parser_reads_fields_comments_and_multiline_data() -> None:
    events = parse(
        "retry: 3000\n\n"
        ": keep-alive\n\n"
        'id: 7\nevent: pushed\ndata: {"type": "pushed", "tag": "v1"}\n\n'
        "event: note\ndata: first line\ndata:second line\n\n"
        "data: no type\r\n\r\n"
        "event: dropped-without-data\n\n"
        "id: 8\nunknown: field\ndata: [1, 2]\n\n"
    )
    assert events == [
        ServerEvent("pushed", {"type": "pushed", "tag": "v1"}, "7"),
        ServerEvent("note", "first line\nsecond line", "7"),
        ServerEvent("message", "no type", "7"),
        ServerEvent("message", [1, 2], "8"),
    ]


def test_parser_keeps_the_retry_hint_and_ignores_a_bad_one() -> None:
    parser = SseParser()
    parser.feed("retry: 2500")
    parser.feed("retry: soon")
    assert parser.retry_ms == 2500


def test_backoff_doubles_to_the_cap_and_respects_a_floor() -> None:
    assert [NO_JITTER.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert NO_JITTER.delay(1, floor_s=3) == 3
    assert NO_JITTER.delay(2, floor_s=3) == 6
    jittery = Backoff(initial_s=10, max_s=10, jitter=0.2)
    delays = {jittery.delay(1) for _ in range(50)}
    assert all(8 <= d <= 12 for d in delays)
    assert len(delays) > 1


class Server:
    """A scripted server: each connection gets the next answer; requests are kept."""

    def __init__(self, answers: list[Callable[[], httpx.Response]]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            return httpx.Response(200, headers=SSE, content=_forever())
        return self.answers.pop(0)()


async def _forever() -> AsyncIterator[bytes]:
    yield b": hello\n\n"
    await asyncio.Event().wait()


def stream_of(*frames: bytes) -> Callable[[], httpx.Response]:
    async def body() -> AsyncIterator[bytes]:
        for frame in frames:
            yield frame

    return lambda: httpx.Response(200, headers=SSE, content=body())


def status(code: int, **headers: str) -> Callable[[], httpx.Response]:
    body = {"error": {"code": "X", "message": f"status {code}", "detail": None}}
    return lambda: httpx.Response(code, json=body, headers=headers)


def refused() -> httpx.Response:
    raise httpx.ConnectError("Connection refused")


class Recorder:
    def __init__(self) -> None:
        self.opened = 0
        self.retries: list[tuple[ClientError, float]] = []
        self.slept: list[float] = []

    def on_open(self) -> None:
        self.opened += 1

    def on_retry(self, error: ClientError, delay: float) -> None:
        self.retries.append((error, delay))

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)


async def collect(server: Server, n: int, rec: Recorder, **kw: Any) -> list[ServerEvent]:
    settings = ConnectionSettings("https://registry.test")
    async with build_client(settings, transport=httpx.MockTransport(server.handler)) as http:
        stream = EventStream(
            http,
            URL,
            what="Events of acme",
            backoff=kw.pop("backoff", NO_JITTER),
            on_open=rec.on_open,
            on_retry=rec.on_retry,
            sleep=rec.sleep,
            **kw,
        )
        out: list[ServerEvent] = []
        async for event in stream:
            out.append(event)
            if len(out) == n:
                break
        return out


def test_reconnects_after_the_stream_ends_with_last_event_id_and_the_retry_hint() -> None:
    server = Server(
        [
            stream_of(b"retry: 3000\n\n", b'id: 1\nevent: pushed\ndata: {"n": 1}\n\n'),
            stream_of(b'id: 2\nevent: tag_deleted\ndata: {"n": 2}\n', b"\n"),
        ]
    )
    rec = Recorder()
    events = asyncio.run(collect(server, 2, rec))
    assert [(e.type, e.data, e.id) for e in events] == [
        ("pushed", {"n": 1}, "1"),
        ("tag_deleted", {"n": 2}, "2"),
    ]
    assert rec.opened == 2
    assert len(rec.retries) == 1
    error, delay = rec.retries[0]
    assert isinstance(error, ProtocolError)
    assert "ended the event stream" in error.message
    assert delay == 3.0  # the server's retry: hint beats the 1 s initial delay
    assert rec.slept == [3.0]
    first, second = server.requests
    assert first.headers["accept"] == "text/event-stream"
    assert "last-event-id" not in first.headers
    assert second.headers["last-event-id"] == "1"


def test_a_half_received_event_is_dropped_when_the_connection_breaks() -> None:
    server = Server(
        [
            stream_of(b'event: pushed\ndata: {"partial": true}\n'),  # no blank line
            stream_of(b'event: gc_run\ndata: {"whole": true}\n\n'),
        ]
    )
    events = asyncio.run(collect(server, 1, Recorder()))
    assert events == [ServerEvent("gc_run", {"whole": True}, None)]


def test_backs_off_while_the_server_is_down_then_resets_once_open() -> None:
    server = Server(
        [
            refused,
            refused,
            status(503),
            status(502),
            stream_of(b"data: 1\n\n"),
            refused,
            stream_of(b"data: 2\n\n"),
        ]
    )
    rec = Recorder()
    events = asyncio.run(collect(server, 2, rec))
    assert [e.data for e in events] == [1, 2]
    # 4 failures double the delay; the stream that opened and ended resets it
    # (its end counts as the first failure again), and the next refusal doubles.
    assert rec.slept == [1, 2, 4, 8, 1, 2]
    kinds = [type(e) for e, _ in rec.retries]
    assert kinds == [
        ConnectionFailed,
        ConnectionFailed,
        ServiceUnavailable,
        ServiceUnavailable,
        ProtocolError,
        ConnectionFailed,
    ]
    assert rec.opened == 2


def test_retry_after_sets_the_shortest_delay() -> None:
    server = Server([status(503, **{"Retry-After": "20"}), stream_of(b"data: 1\n\n")])
    rec = Recorder()
    asyncio.run(collect(server, 1, rec))
    assert rec.slept == [20.0]


@pytest.mark.parametrize(
    ("code", "error"),
    [(401, AuthenticationFailed), (403, PermissionDenied), (404, NotFound)],
)
def test_errors_retrying_cannot_fix_end_the_stream(code: int, error: type[ClientError]) -> None:
    server = Server([status(code)])
    rec = Recorder()
    with pytest.raises(error, match=f"status {code}"):
        asyncio.run(collect(server, 1, rec))
    assert rec.retries == []
    assert rec.opened == 0
    assert len(server.requests) == 1


def test_a_read_timeout_is_a_dead_connection_and_reconnects() -> None:
    async def silent() -> AsyncIterator[bytes]:
        yield b": hello\n\n"
        raise httpx.ReadTimeout("no keep-alive for 45 s")

    server = Server(
        [lambda: httpx.Response(200, headers=SSE, content=silent()), stream_of(b"data: 1\n\n")]
    )
    rec = Recorder()
    events = asyncio.run(collect(server, 1, rec, read_timeout_s=45.0))
    assert [e.data for e in events] == [1]
    assert isinstance(rec.retries[0][0], ConnectionFailed)


def test_not_an_event_stream_is_reported() -> None:
    server = Server(
        [lambda: httpx.Response(200, html="<html>login</html>"), stream_of(b"data: 1\n\n")]
    )
    rec = Recorder()
    asyncio.run(collect(server, 1, rec))
    assert "not an event stream" in rec.retries[0][0].message


def test_cancelling_the_reader_closes_the_response() -> None:
    closed = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b'event: pushed\ndata: {"n": 1}\n\n'
            await asyncio.Event().wait()  # the server has nothing more to say
            yield b""
        finally:
            closed.set()

    async def main() -> list[ServerEvent]:
        got: list[ServerEvent] = []
        first = asyncio.Event()
        rec = Recorder()
        server = Server([lambda: httpx.Response(200, headers=SSE, content=body())])
        settings = ConnectionSettings("https://registry.test")
        async with build_client(settings, transport=httpx.MockTransport(server.handler)) as http:

            async def read() -> None:
                async for event in EventStream(http, URL, what="Events", sleep=rec.sleep):
                    got.append(event)
                    first.set()

            task = asyncio.create_task(read())
            await first.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(closed.wait(), 10)
            assert rec.slept == []  # cancelled, not retried
        return got

    assert [e.data for e in asyncio.run(main())] == [{"n": 1}]
