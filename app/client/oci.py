"""An async client for the OCI Distribution API of any registry (CNCF Distribution,
zot, Harbor, cloud registries, Berth's own ``/v2/``).

:class:`OciClient` is the thin, faithful layer: one method per API call, every
answer checked (status, JSON shape, digest of what came back) and every failure
raised as a :mod:`app.client.errors` class. What builds on it lives beside it:
manifest details with bounded concurrency (:mod:`app.client.oci_details`),
deleting (:mod:`app.client.oci_delete`), capabilities
(:mod:`app.client.capabilities`) and the storage scan (:mod:`app.client.scan`).

Every request passes through one semaphore (``concurrency``, default 8), so no
caller can flood a registry however many tasks it starts, and each request is
bounded by the connection's timeouts. Each request carries the token scope it
needs (``berth_scope``) so a cached bearer token goes out without a 401 first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from app.client.auth import SCOPE_EXTENSION, RegistryAuth
from app.client.errors import NotFound, ProtocolError
from app.client.transport import ConnectionSettings, build_client, json_object, send
from app.core import mediatypes as mt
from app.core.digests import Digest, DigestError, is_digest
from app.core.manifests import (
    Descriptor,
    ImageConfigInfo,
    Manifest,
    ManifestError,
    parse_image_config,
    parse_manifest,
)
from app.core.names import TAG_RE

DEFAULT_CONCURRENCY = 8
DEFAULT_PAGE_SIZE = 1000
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the distribution spec's recommended limit
MAX_CONFIG_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a paginated list; ``next_url`` is None on the last page."""

    items: list[str]
    next_url: str | None


@dataclass(frozen=True, slots=True)
class ManifestRef:
    """What a HEAD (or a PUT) tells about a manifest."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    digest: str
    media_type: str
    raw: bytes
    manifest: Manifest

    @property
    def size(self) -> int:
        return len(self.raw)


def _scope(name: str, actions: str) -> dict[str, Any]:
    return {SCOPE_EXTENSION: f"repository:{name}:{actions}"}


def _check_reference(reference: str) -> None:
    # References go into URL paths unquoted (a digest's ':' must stay as it is).
    if not (TAG_RE.fullmatch(reference) or is_digest(reference)):
        raise ValueError(f"{reference!r} is not a tag or digest")


def _verified_digest(body: bytes, expected: str | None, where: str) -> str:
    """The digest of ``body``, checked against the one asked for or announced."""
    algorithm = "sha256"
    if expected is not None:
        try:
            algorithm = Digest.parse(expected).algorithm
        except DigestError as exc:
            raise ProtocolError(f"{where}: the registry announced a malformed digest.") from exc
    actual = str(Digest.of(body, algorithm))
    if expected is not None and actual != expected:
        raise ProtocolError(
            f"{where}: the content does not match its digest ({expected} expected, "
            f"{actual} received)."
        )
    return actual


class OciClient:
    """The Distribution API of one registry, over an ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.http = http
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self.requests = 0  # requests sent (not counting auth round trips)

    @classmethod
    def connect(
        cls,
        settings: ConnectionSettings,
        username: str | None = None,
        password: str | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> OciClient:
        """A client with its own HTTP client and :class:`RegistryAuth`."""
        auth = RegistryAuth(username, password)
        return cls(build_client(settings, auth=auth, transport=transport), concurrency=concurrency)

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

    @property
    def base_url(self) -> str:
        return str(self.http.base_url).rstrip("/")

    async def _send(self, method: str, url: str, *, what: str, **kwargs: Any) -> httpx.Response:
        async with self._slots:
            self.requests += 1
            return await send(self.http, method, url, what=what, **kwargs)

    # --- base and catalog ---------------------------------------------------------
    async def ping(self) -> None:
        """``GET /v2/``: is this a registry, and do the credentials work?"""
        await self._send("GET", "/v2/", what="Connecting to the registry")

    async def _page(
        self, url: str, params: dict[str, Any] | None, key: str, *, what: str, scope: str
    ) -> Page:
        response = await self._send(
            "GET", url, what=what, params=params, extensions={SCOPE_EXTENSION: scope}
        )
        body = json_object(response, what=what)
        items = body.get(key)
        if items is None:  # Distribution answers "tags": null for an emptied repository
            items = []
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ProtocolError(f"{what}: {key!r} is not a list of names.")
        link = response.links.get("next", {}).get("url")
        return Page(items, link)

    async def catalog_page(
        self, n: int = DEFAULT_PAGE_SIZE, last: str | None = None, *, url: str | None = None
    ) -> Page:
        """One page of ``/v2/_catalog``. Pass a previous page's ``next_url`` as
        ``url`` to follow the registry's Link header exactly."""
        params = None if url else {"n": n, **({"last": last} if last else {})}
        return await self._page(
            url or "/v2/_catalog",
            params,
            "repositories",
            what="Listing the registry's repositories",
            scope="registry:catalog:*",
        )

    async def repositories(self, page_size: int = DEFAULT_PAGE_SIZE) -> AsyncIterator[list[str]]:
        """Every repository name, page by page (raises for a disabled catalog)."""
        async for page in self._paginate(
            lambda url, last: self.catalog_page(page_size, last, url=url)
        ):
            yield page

    async def tags_page(
        self,
        name: str,
        n: int = DEFAULT_PAGE_SIZE,
        last: str | None = None,
        *,
        url: str | None = None,
    ) -> Page:
        params = None if url else {"n": n, **({"last": last} if last else {})}
        return await self._page(
            url or f"/v2/{name}/tags/list",
            params,
            "tags",
            what=f"Listing the tags of {name}",
            scope=f"repository:{name}:pull",
        )

    async def tag_pages(
        self, name: str, page_size: int = DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[list[str]]:
        async for page in self._paginate(
            lambda url, last: self.tags_page(name, page_size, last, url=url)
        ):
            yield page

    async def all_tags(self, name: str, page_size: int = DEFAULT_PAGE_SIZE) -> list[str]:
        out: list[str] = []
        async for page in self.tag_pages(name, page_size):
            out.extend(page)
        return out

    async def all_repositories(self, page_size: int = DEFAULT_PAGE_SIZE) -> list[str]:
        out: list[str] = []
        async for page in self.repositories(page_size):
            out.extend(page)
        return out

    @staticmethod
    async def _paginate(
        fetch: Callable[[str | None, str | None], Awaitable[Page]],
    ) -> AsyncIterator[list[str]]:
        url: str | None = None
        last: str | None = None
        seen: set[str] = set()
        while True:
            page = await fetch(url, last)
            fresh = [i for i in page.items if i not in seen]
            if fresh:
                yield fresh
            seen.update(page.items)
            # Stop on the last page, and on a registry that repeats a page.
            if page.next_url is None or not fresh:
                return
            url, last = page.next_url, page.items[-1]

    # --- manifests ----------------------------------------------------------------
    async def head_manifest(self, name: str, reference: str) -> ManifestRef:
        _check_reference(reference)
        what = (
            f"Looking up {name}:{reference}"
            if ":" not in reference
            else f"Looking up {name}@{reference}"
        )
        response = await self._send(
            "HEAD",
            f"/v2/{name}/manifests/{reference}",
            what=what,
            headers={"Accept": mt.ACCEPT_ALL_MANIFESTS},
            extensions=_scope(name, "pull"),
        )
        digest = response.headers.get("docker-content-digest")
        if digest is None and ":" in reference:
            digest = reference
        if digest is None:
            # Without the header a HEAD cannot say which digest a tag names.
            fetched = await self.get_manifest(name, reference)
            return ManifestRef(fetched.digest, fetched.media_type, fetched.size)
        try:
            Digest.parse(digest)
        except DigestError as exc:
            raise ProtocolError(f"{what}: the registry announced a malformed digest.") from exc
        length = response.headers.get("content-length", "")
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return ManifestRef(digest, media_type, int(length) if length.isdigit() else -1)

    async def get_manifest(self, name: str, reference: str) -> FetchedManifest:
        """A manifest as stored, checked against its digest and parsed."""
        _check_reference(reference)
        by_digest = reference.startswith(("sha256:", "sha512:"))
        what = f"Reading the manifest {name}{'@' if by_digest else ':'}{reference}"
        response = await self._send(
            "GET",
            f"/v2/{name}/manifests/{reference}",
            what=what,
            headers={"Accept": mt.ACCEPT_ALL_MANIFESTS},
            extensions=_scope(name, "pull"),
        )
        raw = response.content
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ProtocolError(f"{what}: the manifest is larger than {MAX_MANIFEST_BYTES} bytes.")
        expected = reference if by_digest else response.headers.get("docker-content-digest")
        digest = _verified_digest(raw, expected, what)
        content_type = response.headers.get("content-type")
        try:
            manifest = parse_manifest(raw, content_type)
        except ManifestError as exc:
            raise ProtocolError(f"{what}: not a manifest Berth understands ({exc}).") from exc
        return FetchedManifest(digest, manifest.media_type, raw, manifest)

    async def put_manifest(
        self, name: str, reference: str, raw: bytes, media_type: str
    ) -> ManifestRef:
        _check_reference(reference)
        digest = str(Digest.of(raw))
        what = f"Pushing a manifest to {name}:{reference}"
        response = await self._send(
            "PUT",
            f"/v2/{name}/manifests/{reference}",
            what=what,
            content=raw,
            headers={"Content-Type": media_type},
            extensions=_scope(name, "pull,push"),
        )
        announced = response.headers.get("docker-content-digest")
        if announced is not None and announced != digest:
            raise ProtocolError(f"{what}: the registry stored it under another digest.")
        return ManifestRef(digest, media_type, len(raw))

    async def delete_manifest(self, name: str, reference: str) -> None:
        """``DELETE /v2/<name>/manifests/<reference>``, as is. The functions in
        :mod:`app.client.oci_delete` decide what to call this with."""
        _check_reference(reference)
        await self._send(
            "DELETE",
            f"/v2/{name}/manifests/{reference}",
            what=f"Deleting {name}{'@' if ':' in reference else ':'}{reference}",
            extensions=_scope(name, "delete"),
        )

    # --- blobs --------------------------------------------------------------------
    async def get_blob(self, name: str, digest: str, *, limit: int = MAX_CONFIG_BYTES) -> bytes:
        """A small blob (a config), checked against its digest."""
        what = f"Reading the blob {digest} of {name}"
        response = await self._send(
            "GET", f"/v2/{name}/blobs/{digest}", what=what, extensions=_scope(name, "pull")
        )
        if len(response.content) > limit:
            raise ProtocolError(f"{what}: larger than {limit} bytes.")
        _verified_digest(response.content, digest, what)
        return response.content

    async def image_config(self, name: str, config: Descriptor) -> ImageConfigInfo:
        """``created`` and platform from an image config (other configs: nothing)."""
        if config.media_type not in mt.IMAGE_CONFIGS:
            return ImageConfigInfo(None, None)
        return parse_image_config(await self.get_blob(name, str(config.digest)))

    async def blob_exists(self, name: str, digest: str) -> bool:
        response = await self._send(
            "HEAD",
            f"/v2/{name}/blobs/{digest}",
            what=f"Checking the blob {digest} in {name}",
            ok=(404,),
            extensions=_scope(name, "pull"),
        )
        return response.status_code == 200

    async def push_blob(self, name: str, data: bytes) -> str:
        """Upload ``data`` unless the repository has it; returns its digest. Uses
        the two-step upload (POST, then PUT) that every registry supports."""
        digest = str(Digest.of(data))
        if await self.blob_exists(name, digest):
            return digest
        what = f"Uploading a blob to {name}"
        started = await self._send(
            "POST", f"/v2/{name}/blobs/uploads/", what=what, extensions=_scope(name, "pull,push")
        )
        location = started.headers.get("location")
        if not location:
            raise ProtocolError(f"{what}: the registry gave no upload location.")
        target = self.http.base_url.join(location).copy_add_param("digest", digest)
        await self._send(
            "PUT",
            str(target),
            what=what,
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            extensions=_scope(name, "pull,push"),
        )
        return digest

    # --- referrers ----------------------------------------------------------------
    async def referrers(self, name: str, digest: str) -> list[Descriptor] | None:
        """Manifests whose ``subject`` is ``digest``; None if the registry has no
        referrers API (it answers 404 without an OCI error code)."""
        what = f"Listing what refers to {name}@{digest}"
        response = await self._send(
            "GET",
            f"/v2/{name}/referrers/{digest}",
            what=what,
            ok=(404,),
            headers={"Accept": mt.OCI_INDEX},
            extensions=_scope(name, "pull"),
        )
        if response.status_code == 404:
            try:
                code_bearing = "errors" in json_object(response, what=what)
            except ProtocolError:
                code_bearing = False
            if code_bearing:
                raise NotFound(f"{what}: {name} does not exist.", status=404)
            return None
        try:
            index = parse_manifest(response.content, mt.OCI_INDEX)
        except ManifestError as exc:
            raise ProtocolError(f"{what}: the answer is not an image index ({exc}).") from exc
        return list(index.manifests)
