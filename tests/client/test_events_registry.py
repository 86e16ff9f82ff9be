"""The event-stream reader against a real registry: events as the server sends
them, a reader without access refused for good, and a reader that outlives a
server restart (the stream ends on shutdown; the reader reconnects to the new one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.client.berth_api import BerthApi
from app.client.errors import ClientError, NotFound
from app.client.events import Backoff, EventStream, ServerEvent
from app.client.transport import ConnectionSettings
from tests.support import oci
from tests.support.registry import PASSWORD, RegistryServer

Factory = Callable[..., RegistryServer]


def connect(server: RegistryServer, user: str) -> BerthApi:
    return BerthApi.connect(ConnectionSettings(server.url), user, PASSWORD)


def push(server: RegistryServer, name: str, tag: str, seed: str) -> oci.Image:
    img = oci.image([oci.random_layer(1000, seed)], label=seed)
    with server.client("root") as c:
        oci.push(c, name, img, tag)
    return img


async def next_of(events: asyncio.Queue[ServerEvent], kind: str) -> ServerEvent:
    while True:
        event = await asyncio.wait_for(events.get(), 60)
        if event.type == kind:
            return event


def test_events_arrive_as_the_server_sends_them(registry: RegistryServer) -> None:
    async def main() -> None:
        async with connect(registry, "reader") as api:
            opened = asyncio.Event()
            events: asyncio.Queue[ServerEvent] = asyncio.Queue()

            async def read(stream: EventStream) -> None:
                async for event in stream:
                    events.put_nowait(event)

            task = asyncio.create_task(read(api.events("acme", on_open=opened.set)))
            await asyncio.wait_for(opened.wait(), 60)
            await asyncio.to_thread(push, registry, "acme/api/hidden", "v1", "hidden")
            img = await asyncio.to_thread(push, registry, "acme/web/app", "v1", "app")
            pushed = await next_of(events, "pushed")
            # The reader may read acme/web only: the push to acme/api never reaches it.
            assert pushed.data["digest"] == img.digest
            assert pushed.data["tag"] == "v1"
            image_id = pushed.data["image_id"]
            async with connect(registry, "root") as root:
                await root.delete_tag(await root.image(image_id), "v1")
            deleted = await next_of(events, "tag_deleted")
            assert deleted.data["image_id"] == image_id
            assert int(deleted.id or 0) > int(pushed.id or 0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())


def test_a_workspace_the_caller_cannot_see_is_refused_without_retrying(
    registry: RegistryServer,
) -> None:
    async def main() -> None:
        retried: list[Any] = []
        async with connect(registry, "outsider") as api:
            with pytest.raises(NotFound):
                async for _ in api.events("acme", on_retry=lambda e, d: retried.append(e)):
                    pass
        assert retried == []

    asyncio.run(main())


def test_the_reader_reconnects_after_a_server_restart(
    registry_factory: Factory, tmp_path: Path
) -> None:
    first = registry_factory()  # the default upload grace: pushes are never robbed
    port = first.url.rsplit(":", 1)[1]

    async def main() -> None:
        opened = asyncio.Event()
        retries: list[ClientError] = []
        events: asyncio.Queue[ServerEvent] = asyncio.Queue()
        async with connect(first, "wsadmin") as api:

            def on_retry(error: ClientError, _delay: float) -> None:
                retries.append(error)

            stream = EventStream(
                api.http,
                "/api/v1/workspaces/acme/events",
                what="Events of acme",
                backoff=Backoff(initial_s=0.2, max_s=0.5),
                on_open=opened.set,
                on_retry=on_retry,
            )

            async def read() -> None:
                async for event in stream:
                    events.put_nowait(event)

            task = asyncio.create_task(read())
            await asyncio.wait_for(opened.wait(), 60)
            await asyncio.to_thread(push, first, "acme/web/app", "v1", "before")
            assert (await next_of(events, "pushed")).data["tag"] == "v1"

            opened.clear()
            await asyncio.to_thread(first.stop)
            # Same data, same port: the reader finds the new server by itself.
            second = RegistryServer(first.data, extra_args=["--port", port])
            await asyncio.to_thread(second.start)
            try:
                await asyncio.wait_for(opened.wait(), 60)
                await asyncio.to_thread(push, second, "acme/web/app", "v2", "after")
                assert (await next_of(events, "pushed")).data["tag"] == "v2"
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                await asyncio.to_thread(second.stop)
        assert stream.connections == 2
        assert retries, "the end of the first stream should have been retried"
        # The retry hint the server sent (3 s) is respected across the restart.
        assert stream.parser.retry_ms == 3000

    asyncio.run(main())
