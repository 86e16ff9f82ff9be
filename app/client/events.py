"""Server-sent events (``text/event-stream``) over an httpx stream, reconnecting.

The management API pushes a workspace's events (pushed, tag_deleted,
manifest_deleted, image_deleted, gc_run) on ``GET /workspaces/{ws}/events``. An
:class:`EventStream` reads it for as long as its consumer iterates::

    stream = EventStream(http, "/api/v1/workspaces/acme/events", what="Events of acme")
    async for event in stream:          # cancel the task to stop; the response closes
        print(event.type, event.data)

A stream that ends (the server restarts, a proxy times it out) or cannot be opened
for a reason worth retrying (refused, 5xx, a cut-off body, a read timeout: the
server sends a comment every few seconds, so silence means a dead connection) is
opened again after a delay that doubles per failure up to a cap, with jitter, and
never shorter than the server's ``retry:`` hint or ``Retry-After``. Errors that
retrying cannot fix (401, 403, 404, any other 4xx) end the iteration with the
:mod:`app.client.errors` exception. The server does not replay what was missed
while disconnected, so ``on_open`` tells the consumer each time the stream
(re)opens: that is when to re-read whatever the events would have updated.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from app.client.errors import (
    ClientError,
    ConnectionFailed,
    ProtocolError,
    ServiceUnavailable,
)
from app.client.transport import error_for_response, translate_exception

# The server writes a keep-alive comment every 15 s; three missed ones is a dead line.
READ_TIMEOUT_S = 45.0


@dataclass(frozen=True, slots=True)
class ServerEvent:
    type: str  # the ``event:`` field ("message" when the server sent none)
    data: Any  # the ``data:`` payload parsed as JSON, or the text when it is not JSON
    id: str | None = None


class SseParser:
    """The event-stream format, line by line (WHATWG HTML, "server-sent events")."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self._type = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerEvent | None:
        """Take one line (without its end of line); an event when a blank line ends one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's keep-alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None  # unknown fields are ignored, as the format requires

    def _dispatch(self) -> ServerEvent | None:
        kind, data = self._type or "message", self._data
        self._type, self._data = "", []
        if not data:
            return None
        text = "\n".join(data)
        try:
            payload: Any = json.loads(text)
        except ValueError:
            payload = text
        return ServerEvent(kind, payload, self.last_id)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts: ``initial_s`` doubling up to ``max_s``,
    each spread by ±``jitter`` so many clients of one restarted server do not
    reconnect in step."""

    initial_s: float = 1.0
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def delay(self, failures: int, floor_s: float = 0.0) -> float:
        base = min(self.max_s, max(self.initial_s, floor_s) * self.factor ** max(0, failures - 1))
        spread = base * self.jitter
        return max(floor_s, base + random.uniform(-spread, spread))


# What can be retried: nothing answered, the server is busy or restarting, or the
# answer was cut off. Everything else (401, 403, 404, ...) is final.
RETRYABLE: tuple[type[ClientError], ...] = (ConnectionFailed, ServiceUnavailable, ProtocolError)


class EventStream:
    """An endless async iterator of :class:`ServerEvent` (see the module docstring).

    ``on_open()`` runs each time the stream is open (first time and after every
    reconnection); ``on_retry(error, delay_s)`` each time it is about to wait and
    reconnect. ``sleep`` is injectable so tests can see the delays without waiting.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        *,
        what: str,
        backoff: Backoff = Backoff(),
        on_open: Callable[[], None] | None = None,
        on_retry: Callable[[ClientError, float], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self.http = http
        self.url = url
        self.what = what
        self.backoff = backoff
        self.on_open = on_open
        self.on_retry = on_retry
        self.sleep = sleep
        self.read_timeout_s = read_timeout_s
        self.parser = SseParser()
        self.connections = 0  # how many times the stream was opened

    def __aiter__(self) -> AsyncIterator[ServerEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ServerEvent]:
        failures = 0
        while True:
            error: ClientError
            opened = self.connections
            try:
                async for event in self._one_connection():
                    yield event
                error = ProtocolError(f"{self.what}: the server ended the event stream.")
            except httpx.HTTPError as exc:
                error = translate_exception(exc, what=self.what)
            except RETRYABLE as exc:
                error = exc
            if not isinstance(error, RETRYABLE):
                raise error
            # A stream that opened resets the backoff (the server's retry hint still holds).
            failures = 1 if self.connections > opened else failures + 1
            floor = (self.parser.retry_ms or 0) / 1000
            if isinstance(error, ServiceUnavailable) and error.retry_after is not None:
                floor = max(floor, error.retry_after)
            delay = self.backoff.delay(failures, floor)
            if self.on_retry is not None:
                self.on_retry(error, delay)
            await self.sleep(delay)

    async def _one_connection(self) -> AsyncIterator[ServerEvent]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.parser.last_id is not None:
            headers["Last-Event-ID"] = self.parser.last_id
        timeout = self.http.timeout.as_dict()
        timeout["read"] = self.read_timeout_s
        async with self.http.stream(
            "GET", self.url, headers=headers, timeout=httpx.Timeout(**timeout)
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise error_for_response(response, what=self.what)
            kind = response.headers.get("content-type", "").split(";")[0].strip()
            if kind != "text/event-stream":
                raise ProtocolError(f"{self.what}: the server answered {kind or 'no content'}, "
                                    "not an event stream.")  # fmt: skip
            self.connections += 1
            # A fresh parser state per connection: a half-received event is dropped.
            last_id, retry_ms = self.parser.last_id, self.parser.retry_ms
            self.parser = SseParser()
            self.parser.last_id, self.parser.retry_ms = last_id, retry_ms
            if self.on_open is not None:
                self.on_open()
            async for line in response.aiter_lines():
                event = self.parser.feed(line.rstrip("\r\n"))
                if event is not None:
                    yield event
