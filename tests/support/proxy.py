"""A TCP proxy in front of a real server that can make something happen on the server
between two of a client's requests: "once a request to X has been answered, do this
before any later request goes through".

That is how a test puts an event (a GC run) exactly between the requests of one
refresh, whatever the machine's speed, while the client and the server stay the real
ones talking real HTTP. The proxy reads only request heads (HTTP/1.1, one request at
a time per connection, as httpx sends them) and passes every byte on unchanged.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

HEAD_END = b"\r\n\r\n"


class Proxy:
    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        assert parts.hostname is not None
        assert parts.port is not None
        self.upstream = (parts.hostname, parts.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[str] = []  # request lines, in the order they went through
        self.fired = threading.Event()
        self._lock = threading.Lock()  # held while the action runs: requests wait
        self._pattern: re.Pattern[str] | None = None
        self._action: Callable[[], None] | None = None
        self._due = False
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def between(self, answered: str, action: Callable[[], None]) -> None:
        """Once a response to a request whose path matches ``answered`` (a regular
        expression) starts, run ``action`` before the next request of any connection
        goes through; requests arriving meanwhile wait for it. Once only."""
        with self._lock:
            self._pattern, self._action, self._due = re.compile(answered), action, False
            self.fired.clear()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        for sock in list(self._sockets):
            _shut(sock)

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                _shut(client)
                continue
            self._sockets += [client, server]
            last: list[str] = [""]  # the path of the request this connection sent last
            threading.Thread(
                target=self._requests, args=(client, server, last), daemon=True
            ).start()
            threading.Thread(
                target=self._responses, args=(server, client, last), daemon=True
            ).start()

    def _requests(self, client: socket.socket, server: socket.socket, last: list[str]) -> None:
        buffer = b""
        try:
            while True:
                while HEAD_END not in buffer:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, buffer = buffer.split(HEAD_END, 1)
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                length = _content_length(head)
                while len(buffer) < length:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                with self._lock:
                    if self._due and self._action is not None:
                        self._due = False
                        self._action()
                        self.fired.set()
                    self.requests.append(line)
                    last[0] = line.split(" ")[1] if " " in line else line
                    server.sendall(head + HEAD_END + body)
        except OSError:
            return
        finally:
            _shut(server)
            _shut(client)

    def _responses(self, server: socket.socket, client: socket.socket, last: list[str]) -> None:
        try:
            while True:
                chunk = server.recv(65536)
                if not chunk:
                    return
                with self._lock:
                    pattern = self._pattern
                    if pattern is not None and not self.fired.is_set() and pattern.search(last[0]):
                        self._due = True
                client.sendall(chunk)
        except OSError:
            return
        finally:
            _shut(client)
            _shut(server)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    assert b"chunked" not in head.lower(), "chunked request bodies are not proxied"
    return 0


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
