"""What the main window needs from a registry, whatever kind it is.

The window talks to one :class:`Backend`; each connection kind (a Berth registry
through its management API, any OCI registry through the Distribution API)
provides one, registered in :data:`FACTORIES` by kind. A backend that cannot do
something (no projects, no delete impact) says so through :class:`Capabilities`
and the window hides or disables what depends on it. No Qt here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from app.client.berth_api import (
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
from app.client.profiles import Kind, Profile


@dataclass(frozen=True, slots=True)
class Scope:
    """What the images table lists: a workspace, a project or a repository."""

    workspace: str
    project: str | None = None
    repository: str | None = None

    @property
    def label(self) -> str:
        if self.repository:
            return f"{self.workspace}/{self.repository}"
        if self.project:
            return f"{self.workspace} · {self.project}"
        return self.workspace


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    superuser: bool = False


@dataclass(frozen=True, slots=True)
class Capabilities:
    projects: bool = True  # workspaces group repositories into projects
    delete_impact: bool = True  # the server can say what a delete frees
    storage: bool = True  # storage figures and GC (the storage view)
    server_sort: tuple[str, ...] = ()  # sort fields the server offers for tags
    # What this registry cannot do, found once per connection: sentences for a banner.
    notes: tuple[str, ...] = ()
    # Why nothing can be deleted here (deletes turned off): delete actions are greyed
    # with this as their tooltip. None: deletes are allowed, or the server decides.
    delete_blocked: str | None = None


@dataclass(frozen=True, slots=True)
class Namespace:
    """A folder in the tree of a registry without workspaces: a path prefix of its
    repository names (``team/app`` holds ``team/app/api``); the path "" is the
    registry itself, shown as ``registry`` (its host)."""

    registry: str
    path: str
    image_count: int  # repository names at or under this path
    has_children: bool  # whether it holds deeper namespaces

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1] if self.path else self.registry

    @property
    def scope(self) -> Scope:
        return Scope(self.registry, repository=self.path or None)


@runtime_checkable
class NamespaceTree(Protocol):
    """A backend whose tree is the path segments of repository names (any OCI
    registry) instead of workspaces → projects → repositories."""

    async def namespaces(self, scope: Scope | None) -> list[Namespace]:
        """The namespaces directly under ``scope``; under None, the registry."""
        ...


class Backend(Protocol):
    profile: Profile
    capabilities: Capabilities
    # How many tags one bulk request deletes: small enough that cancel answers
    # quickly and progress moves, large enough to be ~50x a tag-by-tag loop.
    bulk_chunk: int

    async def identity(self) -> Identity: ...
    async def workspaces(self) -> list[Workspace]: ...
    async def projects(self, ws: str) -> list[Project]: ...
    async def repositories(self, ws: str, project: str | None = None) -> list[Repository]: ...
    async def images(
        self, scope: Scope, *, sort: str | None, q: str | None, limit: int, cursor: str | None
    ) -> Page[Image]: ...
    async def image(self, image: Image) -> Image: ...
    async def tags(
        self, image: Image, *, sort: str | None, q: str | None, limit: int, cursor: str | None
    ) -> Page[Tag]: ...
    async def manifest(self, image: Image, digest: str) -> ManifestDetail: ...
    async def delete_impact(
        self, ws: str, *, tags: Sequence[tuple[Image, str]] = (), images: Sequence[Image] = ()
    ) -> DeleteImpact | None: ...
    async def delete_tags(
        self, image: Image, tags: Sequence[str], expected: Mapping[str, str] | None = None
    ) -> list[TagDeleteResult]:
        """Delete ``tags``; one in ``expected`` only while it is on that digest (where
        the registry can promise it)."""
        ...

    async def delete_image(self, image: Image) -> None: ...
    def pull_reference(
        self, image: Image, tag: str | None = None, digest: str | None = None
    ) -> str: ...
    async def aclose(self) -> None: ...


@runtime_checkable
class StorageSource(Protocol):
    """A backend that reports storage figures, runs GC and streams the workspace's
    events (a Berth registry): what the storage view needs, with
    ``capabilities.storage``."""

    async def storage(self, ws: str) -> Storage: ...
    async def shared_layers(
        self, ws: str, *, repository: str | None, sort: str | None, limit: int, cursor: str | None
    ) -> Page[SharedLayer]: ...
    async def storage_overview(self, ws: str) -> StorageOverview: ...
    async def run_gc(self, ws: str) -> GcRun: ...
    def events(
        self,
        ws: str,
        *,
        on_open: Callable[[], None] | None = None,
        on_retry: Callable[[ClientError, float], None] | None = None,
    ) -> AsyncIterator[ServerEvent]: ...


BackendFactory = Callable[[Profile, str | None], Backend]
FACTORIES: dict[Kind, BackendFactory] = {}


def register(kind: Kind, factory: BackendFactory) -> None:
    FACTORIES[kind] = factory


def create(profile: Profile, secret: str | None) -> Backend:
    try:
        factory = FACTORIES[profile.kind]
    except KeyError:
        raise ValueError(f"connections of kind {profile.kind!r} are not supported yet") from None
    return factory(profile, secret)
