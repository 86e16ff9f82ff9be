"""Async, typed client for the Berth management API (``/api/v1``).

The resource map it follows is the docstring of ``app.registry.api``; every call
returns frozen dataclasses, never raw JSON, and every failure is one of
:mod:`app.client.errors` (raised by :func:`app.client.transport.send`)::

    async with BerthApi.connect(settings, "alice", "s3cret") as api:
        page = await api.tags(image_id, limit=1000)
        while page.next_cursor:
            page = await api.tags(image_id, cursor=page.next_cursor, limit=1000)

Lists are cursor-paginated; :meth:`BerthApi.all_pages` follows the cursors for the
short lists (workspaces, projects, repositories).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar
from urllib.parse import quote

import httpx

from app.client.auth import RegistryAuth
from app.client.errors import ClientError, ProtocolError
from app.client.events import EventStream
from app.client.transport import ConnectionSettings, build_client, json_object, send
from app.core.permissions import Permission

if TYPE_CHECKING:
    from app.client.cleanup import CleanupApi
    from app.client.trash import TrashApi

API = "/api/v1"
PAGE_MAX = 1000  # the server's largest ?limit=
BULK_DELETE_MAX = 1000  # the server's largest tag list for POST .../tags/delete

T = TypeVar("T")


# --- parsing ----------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Times without a zone (an image config may have one) are read as UTC, so every
    # time compares with every other.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _perm(value: Any) -> Permission:
    try:
        return Permission[str(value).upper()]
    except KeyError:
        return Permission.NONE


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


class _Fields:
    """Typed access to one JSON object; a missing or mistyped required field is a
    ProtocolError naming it, not a KeyError deep in the UI."""

    def __init__(self, body: Any, what: str) -> None:
        if not isinstance(body, dict):
            raise ProtocolError(f"{what}: expected a JSON object, got {type(body).__name__}.")
        self.body: dict[str, Any] = body
        self.what = what

    def _get(self, key: str, kind: type | tuple[type, ...]) -> Any:
        value = self.body.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise ProtocolError(f"{self.what}: field {key!r} is missing or not {kind}.")
        return value

    def text(self, key: str) -> str:
        return str(self._get(key, str))

    def num(self, key: str) -> int:
        return int(self._get(key, int))

    def opt_text(self, key: str) -> str | None:
        value = self.body.get(key)
        return value if isinstance(value, str) else None

    def opt_num(self, key: str, default: int = 0) -> int:
        value = self.body.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def opt_seconds(self, key: str) -> float:
        value = self.body.get(key)
        if value is None:
            return 0.0
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ProtocolError(f"{self.what}: field {key!r} is not a number.")
        return float(value)

    def items(self, key: str) -> list[Any]:
        value = self.body.get(key)
        return value if isinstance(value, list) else []


# --- resources --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    total: int


@dataclass(frozen=True, slots=True)
class WorkspaceRef:
    slug: str
    name: str
    role: str  # "admin" | "member" | "guest"


@dataclass(frozen=True, slots=True)
class Me:
    user: str
    superuser: bool
    workspaces: tuple[WorkspaceRef, ...]


@dataclass(frozen=True, slots=True)
class Workspace:
    slug: str
    name: str
    role: str
    project_count: int
    repository_count: int
    image_count: int

    @classmethod
    def parse(cls, body: Any) -> Workspace:
        f = _Fields(body, "workspace")
        return cls(
            slug=f.text("slug"),
            name=f.opt_text("name") or f.text("slug"),
            role=f.opt_text("role") or "guest",
            project_count=f.opt_num("project_count"),
            repository_count=f.opt_num("repository_count"),
            image_count=f.opt_num("image_count"),
        )


@dataclass(frozen=True, slots=True)
class Project:
    workspace: str
    key: str
    name: str
    repository_count: int
    image_count: int

    @classmethod
    def parse(cls, workspace: str, body: Any) -> Project:
        f = _Fields(body, "project")
        return cls(
            workspace=workspace,
            key=f.text("key"),
            name=f.opt_text("name") or f.text("key"),
            repository_count=f.opt_num("repository_count"),
            image_count=f.opt_num("image_count"),
        )


@dataclass(frozen=True, slots=True)
class Repository:
    workspace: str
    id: int
    slug: str
    project: str
    image_count: int
    tag_count: int
    size: int
    permission: Permission

    @property
    def path(self) -> str:
        return f"{self.workspace}/{self.slug}"

    @classmethod
    def parse(cls, workspace: str, body: Any) -> Repository:
        f = _Fields(body, "repository")
        return cls(
            workspace=workspace,
            id=f.num("id"),
            slug=f.text("slug"),
            project=f.opt_text("project") or "",
            image_count=f.opt_num("image_count"),
            tag_count=f.opt_num("tag_count"),
            size=f.opt_num("size"),
            permission=_perm(f.body.get("permission")),
        )


@dataclass(frozen=True, slots=True)
class Image:
    """An image as listed; ``permission`` is known only from ``GET /images/{id}``."""

    id: int
    name: str
    full_name: str  # workspace/repository/image, what `docker pull` takes after the host
    repository: str
    project: str
    tag_count: int
    size: int
    exclusive_size: int
    last_push: datetime | None
    workspace: str = ""
    permission: Permission | None = None
    # Deletes through the id send it (If-Match), so a stale id never reaches
    # another image; the server's documented form is "<id>:<full name>".
    etag: str = ""

    @property
    def repository_path(self) -> str:
        return f"{self.workspace}/{self.repository}"

    @property
    def precondition(self) -> str:
        return self.etag or f'"{self.id}:{self.full_name}"'

    @classmethod
    def parse(cls, body: Any) -> Image:
        f = _Fields(body, "image")
        full_name = f.text("full_name")
        if full_name.count("/") < 2:
            raise ProtocolError("image: field 'full_name' is not workspace/repository/image.")
        permission = f.body.get("permission")
        return cls(
            id=f.num("id"),
            name=f.text("name"),
            full_name=full_name,
            repository=f.opt_text("repository") or full_name.split("/")[1],
            project=f.opt_text("project") or "",
            tag_count=f.opt_num("tag_count"),
            size=f.opt_num("size"),
            exclusive_size=f.opt_num("exclusive_size"),
            last_push=_time(f.body.get("last_push")),
            workspace=f.opt_text("workspace") or full_name.split("/")[0],
            permission=_perm(permission) if permission is not None else None,
            etag=f.opt_text("etag") or "",
        )


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    digest: str
    media_type: str
    size: int
    platforms: tuple[str, ...]
    created: datetime | None
    pushed_at: datetime | None
    other_tags: tuple[str, ...]  # the first few (the server caps the list)
    other_tag_count: int = 0  # all of them
    last_pulled: datetime | None = None  # by this tag's name
    digest_last_pulled: datetime | None = None  # its digest, by any reference

    @classmethod
    def parse(cls, body: Any) -> Tag:
        f = _Fields(body, "tag")
        return cls(
            name=f.text("name"),
            digest=f.text("digest"),
            media_type=f.opt_text("media_type") or "",
            size=f.opt_num("size"),
            platforms=_strs(f.body.get("platforms")),
            created=_time(f.body.get("created")),
            pushed_at=_time(f.body.get("pushed_at")),
            other_tags=_strs(f.body.get("other_tags")),
            other_tag_count=f.opt_num("other_tag_count", len(_strs(f.body.get("other_tags")))),
            last_pulled=_time(f.body.get("last_pulled")),
            digest_last_pulled=_time(f.body.get("digest_last_pulled")),
        )


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    media_type: str
    size: int
    image_count: int  # how many images reference this blob (1 = this one only)


@dataclass(frozen=True, slots=True)
class ChildManifest:
    digest: str
    media_type: str
    platform: str
    size: int


@dataclass(frozen=True, slots=True)
class Referrer:
    digest: str
    artifact_type: str
    size: int


def _platform_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        parts = [str(value.get("os", "")), str(value.get("architecture", ""))]
        if value.get("variant"):
            parts.append(str(value["variant"]))
        return "/".join(p for p in parts if p)
    return ""


@dataclass(frozen=True, slots=True)
class ManifestDetail:
    digest: str
    media_type: str
    artifact_type: str | None
    size: int  # compressed: the manifest, its config and layers (an index: its children)
    tags: tuple[str, ...]
    created: datetime | None
    platforms: tuple[str, ...]
    config: Layer | None
    layers: tuple[Layer, ...]
    manifests: tuple[ChildManifest, ...]
    subject: str | None
    referrers: tuple[Referrer, ...]

    @classmethod
    def parse(cls, body: Any) -> ManifestDetail:
        f = _Fields(body, "manifest")
        cfg = f.body.get("config")
        config = None
        if isinstance(cfg, dict):
            c = _Fields(cfg, "manifest config")
            config = Layer(c.text("digest"), c.opt_text("media_type") or "", c.opt_num("size"), 0)
        layers = []
        for item in f.items("layers"):
            g = _Fields(item, "layer")
            layers.append(
                Layer(
                    g.text("digest"),
                    g.opt_text("media_type") or "",
                    g.opt_num("size"),
                    g.opt_num("image_count", 1),
                )
            )
        children = []
        for item in f.items("manifests"):
            g = _Fields(item, "child manifest")
            children.append(
                ChildManifest(
                    g.text("digest"),
                    g.opt_text("media_type") or "",
                    _platform_text(g.body.get("platform")),
                    g.opt_num("size"),
                )
            )
        referrers = []
        for item in f.items("referrers"):
            g = _Fields(item, "referrer")
            referrers.append(
                Referrer(g.text("digest"), g.opt_text("artifact_type") or "", g.opt_num("size"))
            )
        return cls(
            digest=f.text("digest"),
            media_type=f.opt_text("media_type") or "",
            artifact_type=f.opt_text("artifact_type"),
            size=f.opt_num("size"),
            tags=_strs(f.body.get("tags")),
            created=_time(f.body.get("created")),
            platforms=tuple(_platform_text(p) for p in f.items("platforms")),
            config=config,
            layers=tuple(layers),
            manifests=tuple(children),
            subject=f.opt_text("subject"),
            referrers=tuple(referrers),
        )


@dataclass(frozen=True, slots=True)
class TagDeleteResult:
    tag: str
    status: str  # "deleted" | "not_found" | "changed" (moved to another digest) | "error"
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "deleted"


@dataclass(frozen=True, slots=True)
class BulkDeleteResult:
    results: tuple[TagDeleteResult, ...]
    deleted: int


@dataclass(frozen=True, slots=True)
class StayingTags:
    """Tags on a manifest that some deleted tags point at, which are not deleted."""

    digest: str
    count: int  # all of them, counted by the server
    names: tuple[str, ...]  # the first of them by name (the server caps this list)


@dataclass(frozen=True, slots=True)
class DeleteImpact:
    freed: int  # bytes no longer referenced once these go: freed by the next GC
    kept: int  # bytes still referenced by other images (shared)
    freed_blobs: int
    kept_blobs: int
    tags: int | None = None  # how many tags the delete removes (None: not said)
    staying: tuple[StayingTags, ...] | None = None  # None: the server did not say
    # How long the deleted tags and images stay restorable (0: no trash, deletes are final).
    trash_retention_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RepositoryStorage:
    slug: str
    project: str
    exclusive: int
    shared: int
    image_count: int
    in_trash: int = 0  # bytes only its trash entries hold (restorable, then freed by GC)


@dataclass(frozen=True, slots=True)
class Storage:
    stored: int
    referenced: int
    shared: int
    pending: int
    logical: int
    saving: int
    blob_count: int
    repositories: tuple[RepositoryStorage, ...]
    uploading: int = 0  # bytes of open uploads (not blobs yet)
    upload_count: int = 0
    in_trash: int = 0  # unreferenced bytes held for a restore; GC frees them after the trash

    @property
    def exclusive(self) -> int:
        """Referenced bytes that exactly one image reaches."""
        return self.referenced - self.shared


@dataclass(frozen=True, slots=True)
class SharedLayer:
    digest: str
    size: int
    image_count: int
    images: tuple[tuple[int, str], ...]  # (image id, full name)


@dataclass(frozen=True, slots=True)
class GcRun:
    id: int
    triggers: tuple[str, ...]
    started_at: datetime | None
    duration_ms: int
    manifests_deleted: int
    blobs_deleted: int
    bytes_freed: int

    @classmethod
    def parse(cls, body: Any) -> GcRun:
        f = _Fields(body, "gc run")
        return cls(
            id=f.num("id"),
            triggers=_strs(f.body.get("triggers")),
            started_at=_time(f.body.get("started_at")),
            duration_ms=f.opt_num("duration_ms"),
            manifests_deleted=f.opt_num("manifests_deleted"),
            blobs_deleted=f.opt_num("blobs_deleted"),
            bytes_freed=f.opt_num("bytes_freed"),
        )


@dataclass(frozen=True, slots=True)
class StorageSample:
    at: datetime | None
    stored: int
    referenced: int
    pending: int


@dataclass(frozen=True, slots=True)
class StorageHistory:
    samples: tuple[StorageSample, ...]
    gc_runs: tuple[GcRun, ...]


@dataclass(frozen=True, slots=True)
class GcStatus:
    queued_manifests: int
    queued_blobs: int
    due_manifests: int
    due_blobs: int
    pending_bytes: int
    next_review_at: datetime | None
    review_delay_s: float
    upload_grace_s: float
    recent_runs: tuple[GcRun, ...]
    # How long a delete stays restorable; 0 (or an older registry): deletes are final.
    trash_retention_s: float = 0.0


@dataclass(frozen=True, slots=True)
class StorageOverview:
    """Figures, GC status and history the server read at one moment."""

    storage: Storage
    gc: GcStatus
    history: StorageHistory


def _storage(body: Any) -> Storage:
    f = _Fields(body, "storage")
    repos = []
    for item in f.items("repositories"):
        g = _Fields(item, "storage.repositories")
        repos.append(
            RepositoryStorage(
                g.text("slug"),
                g.opt_text("project") or "",
                g.opt_num("exclusive"),
                g.opt_num("shared"),
                g.opt_num("image_count"),
                g.opt_num("in_trash"),
            )
        )
    return Storage(
        stored=f.opt_num("stored"),
        referenced=f.opt_num("referenced"),
        shared=f.opt_num("shared"),
        pending=f.opt_num("pending"),
        logical=f.opt_num("logical"),
        saving=f.opt_num("saving"),
        blob_count=f.opt_num("blob_count"),
        repositories=tuple(repos),
        uploading=f.opt_num("uploading"),
        upload_count=f.opt_num("upload_count"),
        in_trash=f.opt_num("in_trash"),
    )


def _history(body: Any) -> StorageHistory:
    f = _Fields(body, "storage history")
    samples = []
    for item in f.items("samples"):
        g = _Fields(item, "sample")
        samples.append(
            StorageSample(
                _time(g.body.get("at")),
                g.opt_num("stored"),
                g.opt_num("referenced"),
                g.opt_num("pending"),
            )
        )
    return StorageHistory(tuple(samples), tuple(GcRun.parse(r) for r in f.items("gc_runs")))


def _gc_status(body: Any) -> GcStatus:
    f = _Fields(body, "gc status")
    return GcStatus(
        queued_manifests=f.opt_num("queued_manifests"),
        queued_blobs=f.opt_num("queued_blobs"),
        due_manifests=f.opt_num("due_manifests"),
        due_blobs=f.opt_num("due_blobs"),
        pending_bytes=f.opt_num("pending_bytes"),
        next_review_at=_time(f.body.get("next_review_at")),
        review_delay_s=f.opt_seconds("review_delay_s"),
        upload_grace_s=f.opt_seconds("upload_grace_s"),
        trash_retention_s=f.opt_seconds("trash_retention_s"),
        recent_runs=tuple(GcRun.parse(r) for r in f.items("recent_runs")),
    )


def _page(body: dict[str, Any], parse: Callable[[Any], T]) -> Page[T]:
    f = _Fields(body, "list")
    items = [parse(item) for item in f.items("items")]
    return Page(items, f.opt_text("next_cursor"), f.opt_num("total", len(items)))


def _q(value: str | int) -> str:
    return quote(str(value), safe="")


# --- the client -------------------------------------------------------------------


class BerthApi:
    """One connection to one Berth registry's management API.

    Built with an ``httpx.AsyncClient`` (inject one with ``httpx.MockTransport`` in
    unit tests) or with :meth:`connect`. Close it with ``await api.aclose()`` or
    ``async with``.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    @classmethod
    def connect(
        cls,
        settings: ConnectionSettings,
        username: str | None,
        password: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> BerthApi:
        # Basic on every request: the management API accepts it and it saves the
        # token round trip; the password only ever travels in the Authorization header.
        auth = RegistryAuth(username, password, preemptive_basic=True)
        return cls(build_client(settings, auth=auth, transport=transport))

    @property
    def base_url(self) -> str:
        return str(self.http.base_url).rstrip("/")

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _get(self, path: str, what: str, params: dict[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        response = await send(self.http, "GET", API + path, what=what, params=clean)
        return json_object(response, what=what)

    async def _post(
        self, path: str, what: str, body: Any, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        response = await send(self.http, "POST", API + path, what=what, json=body, headers=headers)
        return json_object(response, what=what)

    @staticmethod
    async def all_pages(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> list[T]:
        """Every item of a list, following ``next_cursor``."""
        out: list[T] = []
        async for page in BerthApi.iter_pages(fetch):
            out.extend(page.items)
        return out

    @staticmethod
    async def iter_pages(
        fetch: Callable[[str | None], Awaitable[Page[T]]],
    ) -> AsyncIterator[Page[T]]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = await fetch(cursor)
            yield page
            if not page.next_cursor or not page.items:
                return
            if page.next_cursor in seen:  # a server bug: the list would never end
                raise ProtocolError(
                    "The registry answered the same cursor again: the list does not end."
                )
            cursor = page.next_cursor
            seen.add(cursor)

    # who am I -------------------------------------------------------------------
    async def me(self) -> Me:
        body = await self._get("/me", "Checking the credentials")
        f = _Fields(body, "me")
        user = _Fields(f.body.get("user"), "me.user")
        workspaces = []
        for item in f.items("workspaces"):
            w = _Fields(item, "me.workspaces")
            workspaces.append(
                WorkspaceRef(w.text("slug"), w.opt_text("name") or "", w.opt_text("role") or "")
            )
        return Me(user.text("name"), bool(user.body.get("superuser")), tuple(workspaces))

    # hierarchy ------------------------------------------------------------------
    async def workspaces_page(
        self, cursor: str | None = None, limit: int = PAGE_MAX
    ) -> Page[Workspace]:
        body = await self._get(
            "/workspaces", "Listing workspaces", {"cursor": cursor, "limit": limit}
        )
        return _page(body, Workspace.parse)

    async def workspaces(self) -> list[Workspace]:
        return await self.all_pages(self.workspaces_page)

    async def workspace(self, ws: str) -> Workspace:
        return Workspace.parse(await self._get(f"/workspaces/{_q(ws)}", f"Reading {ws}"))

    async def projects(self, ws: str) -> list[Project]:
        async def fetch(cursor: str | None) -> Page[Project]:
            body = await self._get(
                f"/workspaces/{_q(ws)}/projects",
                f"Listing projects of {ws}",
                {"cursor": cursor, "limit": PAGE_MAX},
            )
            return _page(body, lambda item: Project.parse(ws, item))

        return await self.all_pages(fetch)

    async def repositories(self, ws: str, project: str | None = None) -> list[Repository]:
        async def fetch(cursor: str | None) -> Page[Repository]:
            body = await self._get(
                f"/workspaces/{_q(ws)}/repositories",
                f"Listing repositories of {ws}",
                {"project": project, "cursor": cursor, "limit": PAGE_MAX},
            )
            return _page(body, lambda item: Repository.parse(ws, item))

        return await self.all_pages(fetch)

    async def images(
        self,
        ws: str,
        *,
        project: str | None = None,
        repository: str | None = None,
        q: str | None = None,
        sort: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Image]:
        body = await self._get(
            f"/workspaces/{_q(ws)}/images",
            f"Listing images of {ws}",
            {
                "project": project,
                "repository": repository,
                "q": q,
                "sort": sort,
                "limit": limit,
                "cursor": cursor,
            },
        )
        return _page(body, Image.parse)

    async def image(self, image_id: int) -> Image:
        return Image.parse(await self._get(f"/images/{image_id}", "Reading the image"))

    async def tags(
        self,
        image_id: int,
        *,
        q: str | None = None,
        sort: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Tag]:
        body = await self._get(
            f"/images/{image_id}/tags",
            "Listing tags",
            {"q": q, "sort": sort, "limit": limit, "cursor": cursor},
        )
        return _page(body, Tag.parse)

    async def manifest(self, image_id: int, digest: str) -> ManifestDetail:
        body = await self._get(
            f"/images/{image_id}/manifests/{_q(digest)}", f"Reading manifest {digest[:19]}"
        )
        return ManifestDetail.parse(body)

    # deleting -------------------------------------------------------------------
    async def delete_image(self, image: Image) -> None:
        """Delete ``image`` (admin), only if its id still names that image."""
        await send(
            self.http,
            "DELETE",
            f"{API}/images/{image.id}",
            what=f"Deleting {image.full_name}",
            headers={"If-Match": image.precondition},
        )

    async def delete_tag(self, image: Image, tag: str, *, digest: str | None = None) -> None:
        """Delete one tag; with ``digest``, only if the tag is still on it."""
        await send(
            self.http,
            "DELETE",
            f"{API}/images/{image.id}/tags/{_q(tag)}",
            what=f"Deleting tag {tag}",
            headers={"If-Match": image.precondition},
            params={"digest": digest} if digest is not None else None,
        )

    async def delete_tags(
        self, image: Image, tags: Sequence[str], *, expected: Mapping[str, str] | None = None
    ) -> BulkDeleteResult:
        """One bulk request (at most :data:`BULK_DELETE_MAX` tags); per-tag outcomes.
        A tag in ``expected`` is deleted only if still on that digest (else its
        outcome is "changed")."""
        if len(tags) > BULK_DELETE_MAX:
            raise ValueError(f"at most {BULK_DELETE_MAX} tags per request")
        if not tags:
            return BulkDeleteResult((), 0)  # nothing to ask (the server refuses an empty list)
        expected = expected or {}
        items: list[Any] = [
            {"name": t, "digest": expected[t]} if t in expected else t for t in tags
        ]
        body = await self._post(
            f"/images/{image.id}/tags/delete",
            f"Deleting {len(tags)} tags",
            {"tags": items},
            headers={"If-Match": image.precondition},
        )
        f = _Fields(body, "bulk delete")
        results = []
        for item in f.items("results"):
            g = _Fields(item, "bulk delete result")
            results.append(
                TagDeleteResult(g.text("tag"), g.text("status"), g.opt_text("message") or "")
            )
        return BulkDeleteResult(tuple(results), f.opt_num("deleted"))

    async def delete_impact(
        self,
        ws: str,
        *,
        tags: Sequence[tuple[int, str]] = (),
        images: Sequence[int] = (),
    ) -> DeleteImpact:
        body = await self._post(
            f"/workspaces/{_q(ws)}/storage/delete-impact",
            "Computing what the delete frees",
            {
                "tags": [{"image_id": i, "tag": t} for i, t in tags],
                "images": list(images),
            },
        )
        f = _Fields(body, "delete impact")
        staying = None
        if "staying" in body:
            staying = []
            for item in f.items("staying"):
                g = _Fields(item, "tags that stay")
                staying.append(
                    StayingTags(g.text("digest"), g.num("count"), _strs(g.body.get("tags")))
                )
        return DeleteImpact(
            f.opt_num("freed"),
            f.opt_num("kept"),
            f.opt_num("freed_blobs"),
            f.opt_num("kept_blobs"),
            tags=f.num("tags") if "tags" in body else None,
            staying=tuple(staying) if staying is not None else None,
            trash_retention_s=f.opt_seconds("trash_retention_s"),
        )

    # storage and gc -------------------------------------------------------------
    async def storage(self, ws: str) -> Storage:
        return _storage(await self._get(f"/workspaces/{_q(ws)}/storage", f"Storage of {ws}"))

    async def storage_overview(self, ws: str) -> StorageOverview:
        """Storage figures, GC status and history read in one transaction: what is
        shown together is one moment (no GC run between the figures and the status)."""
        body = await self._get(f"/workspaces/{_q(ws)}/storage/overview", f"Storage of {ws}")
        f = _Fields(body, "storage overview")
        return StorageOverview(
            _storage(f.body.get("storage")),
            _gc_status(f.body.get("gc")),
            _history(f.body.get("history")),
        )

    async def shared_layers(
        self,
        ws: str,
        *,
        repository: str | None = None,
        sort: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[SharedLayer]:
        def parse(item: Any) -> SharedLayer:
            g = _Fields(item, "shared layer")
            images = tuple(
                (_Fields(i, "image").num("id"), _Fields(i, "image").text("full_name"))
                for i in g.items("images")
            )
            return SharedLayer(
                g.text("digest"), g.opt_num("size"), g.opt_num("image_count"), images
            )

        body = await self._get(
            f"/workspaces/{_q(ws)}/storage/shared-layers",
            f"Shared layers of {ws}",
            {"repository": repository, "sort": sort, "limit": limit, "cursor": cursor},
        )
        return _page(body, parse)

    async def storage_history(self, ws: str, since: datetime | None = None) -> StorageHistory:
        body = await self._get(
            f"/workspaces/{_q(ws)}/storage/history",
            f"Storage history of {ws}",
            {"since": since.isoformat() if since else None},
        )
        return _history(body)

    async def gc_status(self, ws: str) -> GcStatus:
        return _gc_status(await self._get(f"/workspaces/{_q(ws)}/gc", f"GC status of {ws}"))

    async def run_gc(self, ws: str) -> GcRun:
        return GcRun.parse(
            await self._post(f"/workspaces/{_q(ws)}/gc/run", f"Running GC in {ws}", {})
        )

    # cleanup policies -------------------------------------------------------------
    @property
    def cleanup(self) -> CleanupApi:
        """Cleanup policies, previews and runs (app.client.cleanup)."""
        from app.client.cleanup import CleanupApi

        return CleanupApi(self)

    # recently deleted -------------------------------------------------------------
    @property
    def trash(self) -> TrashApi:
        """The trash: list, restore, empty (app.client.trash)."""
        from app.client.trash import TrashApi

        return TrashApi(self)

    # events ---------------------------------------------------------------------
    def events(
        self,
        ws: str,
        *,
        on_open: Callable[[], None] | None = None,
        on_retry: Callable[[ClientError, float], None] | None = None,
    ) -> EventStream:
        """The workspace's event stream (iterate it; it reconnects by itself)."""
        return EventStream(
            self.http,
            f"{API}/workspaces/{_q(ws)}/events",
            what=f"Events of {ws}",
            on_open=on_open,
            on_retry=on_retry,
        )
