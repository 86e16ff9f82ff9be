"""In-process event bus for the management API's server-sent-events stream.

Writes happen in worker threads; subscribers are asyncio queues on the server's
event loop, so publishing hops onto the loop with ``call_soon_threadsafe``. A slow
subscriber loses its oldest events rather than holding memory without bound.

With PostgreSQL, a relay (:mod:`app.registry.event_relay`) carries each event to
the other nodes, which :meth:`EventBus.deliver` it to their own subscribers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import defaultdict
from typing import Any, Protocol

QUEUE_LIMIT = 1000


class Relay(Protocol):
    def send(self, workspace_id: int, event: dict[str, Any]) -> None: ...


class EventBus:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: dict[int, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.relay: Relay | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, workspace_id: int) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        with self._lock:
            self._subscribers[workspace_id].add(queue)
        return queue

    def unsubscribe(self, workspace_id: int, queue: asyncio.Queue[dict[str, Any]]) -> None:
        with self._lock:
            self._subscribers[workspace_id].discard(queue)

    def publish(self, workspace_id: int, event: dict[str, Any]) -> None:
        """An event of this node: to its subscribers, and through the relay to the
        other nodes'."""
        event = {**event, "workspace_id": workspace_id, "at": int(time.time() * 1000)}
        relay = self.relay
        if relay is not None:
            relay.send(workspace_id, event)
        self.deliver(workspace_id, event)

    def deliver(self, workspace_id: int, event: dict[str, Any]) -> None:
        """To this node's subscribers (an event of this node, or one the relay
        brought from another), numbered in this node's sequence."""
        event = {**event, "id": next(self._ids), "workspace_id": workspace_id}
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with self._lock:
            queues = list(self._subscribers.get(workspace_id, ()))
        for queue in queues:
            loop.call_soon_threadsafe(_offer, queue, event)


def _offer(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(event)


def sse_frame(event: dict[str, Any]) -> bytes:
    return (
        f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event, sort_keys=True)}\n\n"
    ).encode()
