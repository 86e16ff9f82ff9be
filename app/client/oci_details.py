"""Manifest details for tables (size, platforms, created, layers), fetched lazily
with bounded concurrency and cached for the session.

A manifest's content never changes under its digest, so details are cached by
digest for as long as the :class:`DetailsLoader` lives (one connection session);
a tag's digest can change, so tags are resolved again on every call.
:meth:`DetailsLoader.iter_tags` yields rows as they arrive, so a table fills in
while the rest is still loading, and stops its workers when the caller stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field

from app.client.errors import ClientError
from app.client.oci import FetchedManifest, OciClient
from app.core import mediatypes as mt
from app.core.manifests import Descriptor


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class ManifestDetails:
    """One manifest and what it reaches. ``size`` counts every distinct blob once:
    the manifest itself, its config and layers and, for an index, its children."""

    digest: str
    media_type: str
    manifest_size: int
    config: Layer | None
    layers: tuple[Layer, ...]
    children: tuple[ManifestDetails, ...] = ()
    platforms: tuple[str, ...] = ()
    created: str | None = None
    artifact_type: str | None = None
    subject: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return mt.is_index(self.media_type)

    def blob_sizes(self) -> dict[str, int]:
        """Every digest reachable from this manifest (itself included) → size.
        In a registry's storage a manifest is a blob like any other."""
        out = {self.digest: self.manifest_size}
        if self.config is not None:
            out[self.config.digest] = self.config.size
        for layer in self.layers:
            out[layer.digest] = layer.size
        for child in self.children:
            out.update(child.blob_sizes())
        return out

    @property
    def size(self) -> int:
        return sum(self.blob_sizes().values())

    def manifest_digests(self) -> list[str]:
        """This manifest and its children, parents first (the order to delete in)."""
        out = [self.digest]
        for child in self.children:
            out.extend(d for d in child.manifest_digests() if d not in out)
        return out


@dataclass(frozen=True, slots=True)
class TagDetails:
    """A row for the tags table: the details, or why they could not be read."""

    repository: str
    tag: str
    details: ManifestDetails | None
    error: ClientError | None = None


def _layer(d: Descriptor) -> Layer:
    return Layer(str(d.digest), d.media_type, d.size)


class DetailsLoader:
    """Details of manifests in one registry, cached per session by digest."""

    def __init__(self, client: OciClient) -> None:
        self.client = client
        self._cache: dict[str, ManifestDetails] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def cached(self, digest: str) -> ManifestDetails | None:
        return self._cache.get(digest)

    def forget(self, digest: str) -> None:
        self._cache.pop(digest, None)

    async def tag(self, repository: str, tag: str) -> ManifestDetails:
        """Resolve ``tag`` (one GET) and describe what it names."""
        fetched = await self.client.get_manifest(repository, tag)
        return await self._describe(repository, fetched)

    async def digest(self, repository: str, digest: str) -> ManifestDetails:
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        async with self._locks.setdefault(digest, asyncio.Lock()):
            cached = self._cache.get(digest)
            if cached is not None:
                return cached
            fetched = await self.client.get_manifest(repository, digest)
            details = await self._build(repository, fetched)
            self._cache[digest] = details
            return details

    async def _describe(self, repository: str, fetched: FetchedManifest) -> ManifestDetails:
        # Tags on one digest arrive together: describe it (config, children) once.
        async with self._locks.setdefault(fetched.digest, asyncio.Lock()):
            cached = self._cache.get(fetched.digest)
            if cached is None:
                cached = self._cache[fetched.digest] = await self._build(repository, fetched)
            return cached

    async def _build(self, repository: str, fetched: FetchedManifest) -> ManifestDetails:
        m = fetched.manifest
        subject = str(m.subject.digest) if m.subject else None
        if m.is_index:
            children = await asyncio.gather(
                *(self.digest(repository, str(c.digest)) for c in m.manifests)
            )
            details = ManifestDetails(
                fetched.digest,
                m.media_type,
                fetched.size,
                None,
                (),
                tuple(children),
                tuple(m.platforms),
                max((c.created for c in children if c.created), default=None),
                m.artifact_type,
                subject,
                dict(m.annotations),
            )
        else:
            assert m.config is not None
            info = await self.client.image_config(repository, m.config)
            details = ManifestDetails(
                fetched.digest,
                m.media_type,
                fetched.size,
                _layer(m.config),
                tuple(_layer(d) for d in m.layers),
                (),
                (info.platform,) if info.platform else (),
                info.created,
                m.effective_artifact_type,
                subject,
                dict(m.annotations),
            )
        return details

    async def iter_tags(
        self, repository: str, tags: Iterable[str], *, workers: int | None = None
    ) -> AsyncGenerator[TagDetails, None]:
        """Details of ``tags`` as they arrive (not in order). A tag that cannot be
        read comes back with ``error`` set; other failures do not stop the rest.

        ``workers`` defaults to the client's concurrency; the client's semaphore
        bounds the requests in flight in any case. Closing the iterator (or
        cancelling its consumer) cancels the outstanding work.
        """
        many = self.iter_many([(repository, t) for t in tags], workers=workers)
        async with contextlib.aclosing(many) as rows:  # closed with this one: workers stop
            async for row in rows:
                yield row

    async def iter_many(
        self, items: Iterable[tuple[str, str]], *, workers: int | None = None
    ) -> AsyncGenerator[TagDetails, None]:
        """Like :meth:`iter_tags` over (repository, tag) pairs of any repositories."""
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        for item in items:
            queue.put_nowait(item)
        results: asyncio.Queue[TagDetails | None] = asyncio.Queue()
        count = max(1, min(workers or self.client.concurrency, queue.qsize()))

        async def work() -> None:
            try:
                while True:
                    try:
                        repository, tag = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    try:
                        details = await self.tag(repository, tag)
                    except ClientError as exc:
                        await results.put(TagDetails(repository, tag, None, exc))
                    else:
                        await results.put(TagDetails(repository, tag, details))
            finally:
                await results.put(None)

        tasks = [asyncio.create_task(work(), name=f"oci-details-{i}") for i in range(count)]
        running = count
        try:
            while running:
                row = await results.get()
                if row is None:
                    running -= 1
                    continue
                yield row
            for task in tasks:
                await task  # re-raise a bug (not a ClientError) in a worker
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
