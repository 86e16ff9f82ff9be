"""The ASGI application and the ``serve`` loop (uvicorn on a socket we bind, so
``--port 0`` can report the port it got)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from starlette.routing import Route

from app import __version__
from app.registry import housekeeping, pulls
from app.registry.api.events import end_streams
from app.registry.api.mount import mount as mount_api
from app.registry.gc.worker import GcWorker
from app.registry.oci.router import routes as oci_routes
from app.registry.policies.worker import PolicyWorker
from app.registry.service import Registry
from app.registry.tokens import token


def create_app(registry: Registry) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry.events.bind(asyncio.get_running_loop())
        # Several nodes share one PostgreSQL: their events travel through it.
        relay = None
        if not registry.db.is_sqlite:
            from app.registry.event_relay import relay_for  # psycopg: the postgres extra

            relay = relay_for(registry.db.engine, registry.events)
        if relay is not None:
            relay.start()
        worker = GcWorker(registry)
        cleanup = PolicyWorker(registry, registry.policy_check_s)
        tasks = [
            asyncio.create_task(cleanup.run(), name="cleanup-policies"),
            asyncio.create_task(housekeeping.run(registry), name="housekeeping"),
            asyncio.create_task(worker.run(), name="gc"),
            asyncio.create_task(
                pulls.run(registry.db, registry.pulls, registry.pull_flush_s), name="pulls"
            ),
        ]
        try:
            yield
        finally:
            worker.stop()  # lets a pass in its thread return after the current review
            await asyncio.to_thread(cleanup.stop)  # runs stop after their current chunk
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if relay is not None:
                await asyncio.to_thread(relay.stop)

    app = FastAPI(
        title="Berth registry management API",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.registry = registry
    # Registry clients first: matching them before the management API spares every
    # pull and push a walk over the API's routes (and the lazy set-up FastAPI does for
    # each API route on the first request that reaches it, ~150 ms).
    app.router.routes[:0] = [*oci_routes, Route("/auth/token", token, methods=["GET", "POST"])]
    mount_api(app)
    return app


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 5000
    tls_cert: Path | None = None
    tls_key: Path | None = None


class _Server(uvicorn.Server):
    """uvicorn's server, except that SIGTERM/SIGINT end the process with status 0.

    uvicorn re-raises a caught signal once it has shut down, so a registry stopped
    cleanly by SIGTERM would still report death by signal (143) to its supervisor.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            # handle_exit: first signal shuts down gracefully, a second SIGINT forces.
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn waits for open responses to finish, and an event stream never does.
        end_streams(self.config.app)
        await super().shutdown(sockets)


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket (raises OSError: address in use, bad host, ...)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def serve(registry: Registry, options: ServeOptions, sock: socket.socket) -> None:
    """Serve on ``sock`` (from :func:`listen`) until SIGTERM/SIGINT."""
    family = sock.family
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    tls = options.tls_cert is not None
    config = uvicorn.Config(
        create_app(registry),
        log_level="warning",
        access_log=False,
        ssl_certfile=str(options.tls_cert) if options.tls_cert else None,
        ssl_keyfile=str(options.tls_key) if options.tls_key else None,
        ssl_version=ssl.PROTOCOL_TLS_SERVER,
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=64 * 1024,
    )
    server = _Server(config)
    scheme = "https" if tls else "http"
    host = f"[{options.host}]" if family == socket.AF_INET6 else options.host

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        # uvicorn offers no readiness callback; poll its flag briefly.
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if server.started:
            sys.stdout.write(f"listening on {scheme}://{host}:{port}\n")
            sys.stdout.flush()
        await task

    try:
        # uvicorn picks uvloop when installed, but only for loops it creates itself.
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(main())
    finally:
        sock.close()
        registry.close()
