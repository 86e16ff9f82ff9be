"""The Berth management API as a :class:`~app.ui.backends.protocol.Backend`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import httpx

from app.client.berth_api import (
    BerthApi,
    DeleteImpact,
    GcRun,
    Image,
    ManifestDetail,
    Page,
    Project,
    Repository,
    SharedLayer,
    Storage,
    StorageOverview,
    Tag,
    TagDeleteResult,
    Workspace,
)
from app.client.errors import ClientError
from app.client.events import ServerEvent
from app.client.profiles import Profile
from app.ui.backends import protocol as backend
from app.ui.backends.protocol import Capabilities, Identity, Scope


class BerthBackend:
    capabilities = Capabilities(server_sort=("name", "pushed_at", "size", "created"))
    bulk_chunk = 100

    def __init__(
        self,
        profile: Profile,
        secret: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.profile = profile
        self.api = BerthApi.connect(
            profile.connection(), profile.username or None, secret, transport=transport
        )

    async def identity(self) -> Identity:
        me = await self.api.me()
        return Identity(me.user, me.superuser)

    async def workspaces(self) -> list[Workspace]:
        return await self.api.workspaces()

    async def projects(self, ws: str) -> list[Project]:
        return await self.api.projects(ws)

    async def repositories(self, ws: str, project: str | None = None) -> list[Repository]:
        return await self.api.repositories(ws, project)

    async def images(
        self, scope: Scope, *, sort: str | None, q: str | None, limit: int, cursor: str | None
    ) -> Page[Image]:
        return await self.api.images(
            scope.workspace,
            project=scope.project,
            repository=scope.repository,
            q=q,
            sort=sort,
            limit=limit,
            cursor=cursor,
        )

    async def image(self, image: Image) -> Image:
        return await self.api.image(image.id)

    async def tags(
        self, image: Image, *, sort: str | None, q: str | None, limit: int, cursor: str | None
    ) -> Page[Tag]:
        return await self.api.tags(image.id, sort=sort, q=q, limit=limit, cursor=cursor)

    async def manifest(self, image: Image, digest: str) -> ManifestDetail:
        return await self.api.manifest(image.id, digest)

    async def delete_impact(
        self, ws: str, *, tags: Sequence[tuple[Image, str]] = (), images: Sequence[Image] = ()
    ) -> DeleteImpact | None:
        return await self.api.delete_impact(
            ws, tags=[(i.id, t) for i, t in tags], images=[i.id for i in images]
        )

    async def delete_tags(
        self, image: Image, tags: Sequence[str], expected: Mapping[str, str] | None = None
    ) -> list[TagDeleteResult]:
        result = await self.api.delete_tags(image, tags, expected=expected)
        return list(result.results)

    async def delete_image(self, image: Image) -> None:
        await self.api.delete_image(image)

    def pull_reference(
        self, image: Image, tag: str | None = None, digest: str | None = None
    ) -> str:
        ref = f"{self.profile.host}/{image.full_name}"
        if digest:
            return f"{ref}@{digest}"
        return f"{ref}:{tag}" if tag else ref

    async def storage(self, ws: str) -> Storage:
        return await self.api.storage(ws)

    async def shared_layers(
        self, ws: str, *, repository: str | None, sort: str | None, limit: int, cursor: str | None
    ) -> Page[SharedLayer]:
        return await self.api.shared_layers(
            ws, repository=repository, sort=sort, limit=limit, cursor=cursor
        )

    async def storage_overview(self, ws: str) -> StorageOverview:
        return await self.api.storage_overview(ws)

    async def run_gc(self, ws: str) -> GcRun:
        return await self.api.run_gc(ws)

    def events(
        self,
        ws: str,
        *,
        on_open: Callable[[], None] | None = None,
        on_retry: Callable[[ClientError, float], None] | None = None,
    ) -> AsyncIterator[ServerEvent]:
        return aiter(self.api.events(ws, on_open=on_open, on_retry=on_retry))

    async def aclose(self) -> None:
        await self.api.aclose()


backend.register("berth", BerthBackend)
