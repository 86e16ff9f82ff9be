"""Events across nodes: PostgreSQL LISTEN/NOTIFY under the in-process event bus.

Every node publishes its events to its own subscribers at once and NOTIFYs them on
one channel; every node LISTENs there and hands the other nodes' events to its own
subscribers. So an event stream opened on any node sees a delete made on another,
a GC run of a ``berth-registry gc`` process, a push through the load balancer.

Two threads per process, each with a connection of its own outside the pool (a
LISTEN holds its connection for good): one sends, one listens. Both reconnect
after a failure. Like the bus itself, delivery is best effort: what is published
while the database is unreachable is lost, and a stream's client re-reads what
the events would have updated whenever its stream (re)opens.

A NOTIFY payload must stay under 8000 bytes: an event carrying a long list of tag
names (a bulk delete) goes as several events, each with part of the list.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import uuid
from typing import Any

import psycopg
from sqlalchemy import Engine

from app.registry.events import EventBus

log = logging.getLogger(__name__)

CHANNEL = "berth_events"
MAX_PAYLOAD = 7000
RECONNECT_S = 1.0
POLL_S = 0.5
SEND_QUEUE = 10_000


def split_event(event: dict[str, Any], limit: int = MAX_PAYLOAD) -> list[dict[str, Any]]:
    """The event as one or more events whose JSON fits in ``limit`` bytes; only the
    ``tags`` list is split, since that is what grows without bound."""
    if len(json.dumps(event)) <= limit or not isinstance(event.get("tags"), list):
        return [event]
    tags: list[str] = event["tags"]
    out: list[dict[str, Any]] = []
    part: list[str] = []
    base = len(json.dumps({**event, "tags": []}))
    size = base
    for tag in tags:
        cost = len(json.dumps(tag)) + 2
        if part and size + cost > limit:
            out.append({**event, "tags": part})
            part, size = [], base
        part.append(tag)
        size += cost
    out.append({**event, "tags": part})
    return out


def _conninfo(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def relay_for(engine: Engine, bus: EventBus, *, listen: bool = True) -> PostgresRelay | None:
    """The relay a registry on this database needs (None on SQLite: one node)."""
    if engine.dialect.name != "postgresql":
        return None
    return PostgresRelay(engine, bus, listen=listen)


class PostgresRelay:
    def __init__(self, engine: Engine, bus: EventBus, *, listen: bool = True) -> None:
        self.conninfo = _conninfo(engine)
        self.bus = bus
        self.node = str(uuid.uuid4())
        self.listen = listen
        self._outbox: queue.Queue[str | None] = queue.Queue(SEND_QUEUE)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Set once the listener's LISTEN is in place (tests wait for it).
        self.listening = threading.Event()

    def start(self) -> None:
        self.bus.relay = self
        targets = [self._send_loop] + ([self._listen_loop] if self.listen else [])
        for target in targets:
            thread = threading.Thread(target=target, name=f"event-relay-{target.__name__}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.bus.relay = None
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._outbox.put_nowait(None)
        for thread in self._threads:
            thread.join(5)

    # sending ------------------------------------------------------------------
    def send(self, workspace_id: int, event: dict[str, Any]) -> None:
        """Queue an event for the other nodes (called by the bus, on any thread)."""
        for part in split_event(event):
            payload = json.dumps({"n": self.node, "w": workspace_id, "e": part})
            try:
                self._outbox.put_nowait(payload)
            except queue.Full:
                log.warning("event relay queue full; an event is not relayed")

    def _send_loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        pending: str | None = None
        while not self._stop.is_set():
            if pending is None:
                pending = self._outbox.get()
                if pending is None:
                    break
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.conninfo, autocommit=True)
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, pending))
                pending = None
            except psycopg.Error:
                log.warning("event relay: cannot notify; retrying", exc_info=True)
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(RECONNECT_S)
        if conn is not None:
            conn.close()

    # listening ----------------------------------------------------------------
    def _listen_loop(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=POLL_S):
                            self._deliver(note.payload)
            except psycopg.Error:
                self.listening.clear()
                log.warning("event relay: listener lost its connection; reconnecting")
                self._stop.wait(RECONNECT_S)

    def _deliver(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message["n"] == self.node:
                return  # our own, delivered locally already
            self.bus.deliver(int(message["w"]), dict(message["e"]))
        except (ValueError, KeyError, TypeError):
            log.warning("event relay: ignoring a malformed notification")
