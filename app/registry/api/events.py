"""``/workspaces/{ws}/events``: the workspace's events as server-sent events.

A stream ends when the client goes away (Starlette cancels it) or when the server
shuts down (:func:`end_streams`, called first thing by the server's shutdown:
uvicorn waits for open responses, and an event stream never finishes by itself).
A comment line every few seconds keeps proxies from timing the stream out.

Callers who are not workspace admins see only events of repositories they may read;
GC runs concern the whole workspace and reach everyone who can see it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse

from app.registry import accounts
from app.registry.accounts import User
from app.registry.api.context import Authenticated, readable_in, workspace_access
from app.registry.api.errors import documented
from app.registry.errors import NotFound
from app.registry.events import sse_frame
from app.registry.service import Registry

router = APIRouter(responses=documented(400, 401, 404, 503))

KEEPALIVE_S = 15.0
_END: dict[str, Any] = {"type": "__end__"}


@dataclass
class Streams:
    """The open streams of one app, so shutdown can end them."""

    closing: bool = False
    queues: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)

    def end_all(self) -> None:
        self.closing = True
        for queue in self.queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(_END)


def install(app: FastAPI) -> None:
    app.state.api_streams = Streams()


def end_streams(app: object) -> None:
    """End every open event stream of ``app`` (the server is shutting down)."""
    if isinstance(app, FastAPI):
        streams: Streams | None = getattr(app.state, "api_streams", None)
        if streams is not None:
            streams.end_all()


class _Visibility:
    """Which events a caller may see.

    Every event about an image names its repository (set where the event is made,
    in the write's transaction), so nothing is looked up or cached here: a cache of
    image id -> repository would outlive the image, and its id must never vouch for
    a newer image's events. Events without a repository concern the whole workspace
    (GC runs); an image event that lacks one is withheld rather than guessed at.
    """

    WORKSPACE_WIDE = frozenset({"gc_run", "policy_run"})

    def __init__(self, reg: Registry, user: User, slug: str, readable: set[int] | None) -> None:
        self.reg = reg
        self.user = user
        self.slug = slug
        self.readable = readable

    def still_allowed(self) -> bool:
        """Whether the caller may still follow the stream, read again before events
        go out (in a worker thread): a stream lasts for hours, and a changed password,
        a removed user or a lost workspace end it; a changed grant or membership (the
        user's access version, bumped with it on any node) works out anew what the
        caller may read."""
        with self.reg.db.read() as conn:
            now = accounts.find_user(conn, self.user.name)
            if now is None or (now.id, now.stamp) != (self.user.id, self.user.stamp):
                return False
            if (now.access_version, now.is_superuser) != (
                self.user.access_version,
                self.user.is_superuser,
            ):
                try:
                    access = workspace_access(conn, now, self.slug)
                except NotFound:
                    return False
                self.readable = readable_in(conn, now, access)
                self.user = now
        return True

    def allows(self, event: dict[str, Any]) -> bool:
        if self.readable is None:
            return True
        repository_id = event.get("repository_id")
        if repository_id is None:
            return event.get("type") in self.WORKSPACE_WIDE
        return repository_id in self.readable


async def _frames(
    request: Request, workspace_id: int, visibility: _Visibility
) -> AsyncIterator[bytes]:
    reg = visibility.reg
    streams: Streams = request.app.state.api_streams
    # Subscribed only once the response starts: a client gone before then leaves
    # nothing behind.
    queue = reg.events.subscribe(workspace_id)
    streams.queues.add(queue)
    try:
        # Tell the client how soon to reconnect if the stream drops.
        yield b"retry: 3000\n\n"
        while not streams.closing:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"
                if not await reg.run(visibility.still_allowed):
                    break
                continue
            # The events that came with this one share one look at the caller.
            batch = [event]
            while not queue.empty():
                batch.append(queue.get_nowait())
            if _END in batch or not await reg.run(visibility.still_allowed):
                break
            for queued in batch:
                if visibility.allows(queued):
                    yield sse_frame(queued)
    finally:
        reg.events.unsubscribe(workspace_id, queue)
        streams.queues.discard(queue)


@router.get(
    "/workspaces/{ws}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "server-sent events: pushed, tag_deleted, manifest_deleted, "
            "image_deleted, gc_run, policy_run; data is the JSON event",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
    summary="A stream of the workspace's events",
)
async def events(request: Request, caller: Authenticated, ws: str) -> StreamingResponse:
    reg = caller.registry

    def check() -> tuple[int, str, set[int] | None]:
        with reg.db.read() as conn:
            access = workspace_access(conn, caller.user, ws)
            return access.id, access.slug, readable_in(conn, caller.user, access)

    wid, slug, readable = await reg.run(check)
    return StreamingResponse(
        _frames(request, wid, _Visibility(reg, caller.user, slug, readable)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
