"""A workspace's server-sent-events stream read in a thread, as tests need it."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
from typing import Any

import httpx

from tests.support.registry import PASSWORD, RegistryServer

END = {"type": "<end of stream>"}


class Stream:
    """Reads a workspace's event stream in a thread; events arrive on ``events``."""

    def __init__(self, server: RegistryServer, user: str, workspace: str = "acme") -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.opened = threading.Event()
        self.status: int | None = None
        self.socket: socket.socket | None = None
        self.client = httpx.Client(
            base_url=server.url + "/api/v1",
            auth=httpx.BasicAuth(user, PASSWORD),
            timeout=httpx.Timeout(30, read=120),
        )
        self.thread = threading.Thread(target=self._read, args=(workspace,), daemon=True)
        self.thread.start()
        assert self.opened.wait(60)

    def _read(self, workspace: str) -> None:
        try:
            with self.client.stream("GET", f"/workspaces/{workspace}/events") as r:
                self.socket = r.extensions["network_stream"].get_extra_info("socket")
                self.status = r.status_code
                self.opened.set()
                kind, data = None, None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        kind = line[len("event: ") :]
                    elif line.startswith("data: "):
                        data = json.loads(line[len("data: ") :])
                    elif line == "" and kind is not None and data is not None:
                        assert data["type"] == kind
                        self.events.put(data)
                        kind, data = None, None
        except httpx.HTTPError:
            pass  # the test closed the client
        finally:
            self.opened.set()
            self.events.put(END)

    def until(self, kind: str) -> list[dict[str, Any]]:
        """Events up to and including the first of ``kind``."""
        seen = []
        while True:
            event = self.events.get(timeout=60)
            seen.append(event)
            if event["type"] in (kind, END["type"]):
                return seen

    def close(self) -> None:
        """Hang up, as a client that goes away does (the reader thread ends at once)."""
        if self.socket is not None:
            with contextlib.suppress(OSError):
                self.socket.shutdown(socket.SHUT_RDWR)
        self.thread.join(30)
        self.client.close()
