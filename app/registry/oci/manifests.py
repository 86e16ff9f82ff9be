"""Manifests (GET/HEAD/PUT/DELETE by tag or digest), tags/list, _catalog and the
referrers API."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.core import mediatypes as mt
from app.core.digests import Digest, DigestError
from app.core.manifests import Manifest, ManifestError, parse_manifest
from app.core.names import InvalidName, validate_tag
from app.core.permissions import Permission
from app.registry import accounts, content
from app.registry.blobstore import StoreUnavailable
from app.registry.content import Blob, Change
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.errors import (
    DigestInvalid,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    TagInvalid,
    TooLarge,
)
from app.registry.oci.access import authorize, identify, registry_of
from app.registry.oci.blobs import parse_digest
from app.registry.service import Registry

MAX_MANIFEST = 4 * 1024 * 1024


def _is_digest(reference: str) -> bool:
    return ":" in reference


def _check_reference(reference: str, *, push: bool = False) -> None:
    """A reference is a digest or a tag (spec: "MUST NOT be in any other format")."""
    if _is_digest(reference):
        parse_digest(reference)
        return
    try:
        validate_tag(reference)
    except InvalidName as exc:
        if push:
            raise ManifestInvalid(str(exc), detail={"tag": reference}) from None
        # No manifest can have this name, so it is simply not there.
        raise ManifestUnknown(str(exc), detail={"tag": reference}) from None


def publish(reg: Registry, workspace_id: int, change: Change) -> None:
    for event in change.events:
        reg.events.publish(workspace_id, event)


async def get_manifest(request: Request, name: str, reference: str) -> Response:
    target = await authorize(request, name, Permission.READ, "pull")
    _check_reference(reference)
    reg = registry_of(request)

    def work() -> content.StoredManifest:
        now = now_ms()
        with reg.db.write() as conn:
            image = content.find_image(conn, target.repo, target.name.image)
            if image is None:
                raise ManifestUnknown(f"manifest {reference} is not known to this image")
            m = content.get_manifest(conn, image, reference, by_digest=_is_digest(reference))
            # A HEAD or GET protects the manifest for the upload grace, like a blob check.
            content.touch_manifest(conn, m.id, now)
        # Noted in memory only; written in batches (app.registry.pulls).
        reg.pulls.record(m.id, m.tag_id, now)
        return m

    m = await reg.run(work)
    headers = {
        "Content-Type": m.media_type,
        "Docker-Content-Digest": m.digest,
        "Content-Length": str(len(m.payload)),
    }
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers)
    return Response(m.payload, status_code=200, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"manifest larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"manifest larger than {limit} bytes")
    return bytes(body)


def _parse_pushed(payload: bytes, content_type: str | None) -> Manifest:
    try:
        return parse_manifest(payload, content_type, strict=True)
    except ManifestError as exc:
        raise ManifestInvalid(str(exc)) from None


MAX_TAG_PARAMS = 100


def _tag_params(values: list[str]) -> list[str]:
    """The ``?tag=`` parameters of a manifest push (distribution spec 1.1: tags set
    with a push by digest, answered with ``OCI-Tag``), checked and de-duplicated."""
    if len(values) > MAX_TAG_PARAMS:
        raise RegistryError(
            f"at most {MAX_TAG_PARAMS} tag parameters per push",
            status=414,
            code="TAG_INVALID",
            detail={"tags": len(values)},
        )
    for value in values:
        try:
            validate_tag(value)
        except InvalidName as exc:
            raise TagInvalid(str(exc), detail={"tag": value}) from None
    return list(dict.fromkeys(values))


async def put_manifest(request: Request, name: str, reference: str) -> Response:
    target = await authorize(request, name, Permission.WRITE, "push")
    _check_reference(reference, push=True)
    payload = await _read_body(request, MAX_MANIFEST)
    reg = registry_of(request)
    # Off the event loop: a 4 MiB manifest takes a while to parse and check.
    manifest = await reg.run(_parse_pushed, payload, request.headers.get("content-type"))
    params = request.query_params
    more_tags = _tag_params(params.getlist("tag"))
    if _is_digest(reference):
        claimed: Digest | None = Digest.parse(reference)
        tag = None
    else:
        # A push by tag stores the canonical (sha256) digest unless the client names
        # the one it wants, e.g. ``?digest=sha512:...`` to keep a non-canonical
        # digest that signatures and pinned references use.
        wanted = params.get("digest")
        claimed = parse_digest(wanted) if wanted is not None else None
        tag = reference
    if claimed is not None:
        digest = Digest.of(payload, claimed.algorithm)
        if digest != claimed:
            raise DigestInvalid(
                f"manifest content has digest {digest}, not {claimed}",
                detail={"digest": str(claimed)},
            )
    else:
        digest = Digest.of(payload)

    def read_config(blob: Blob) -> bytes | None:
        try:
            return reg.store.read_bytes(
                blob.workspace_id, blob.digest, blob.generation, content.MAX_CONFIG_READ
            )
        except StoreUnavailable:
            return None  # the manifest goes in without its config's summary

    def work() -> Change:
        now = now_ms()
        with reg.db.write() as conn:
            image = content.ensure_image(conn, target.repo, target.name.image, now)
            return content.put_manifest(
                conn,
                image,
                str(digest),
                payload,
                manifest,
                tag,
                read_config,
                reg.timing,
                now,
                actor=target.actor,
                more_tags=more_tags,
            )

    change = await reg.run(work)
    publish(reg, target.repo.workspace_id, change)
    headers = {
        "Location": f"/v2/{name}/manifests/{digest}",
        "Docker-Content-Digest": str(digest),
        "Content-Length": "0",
    }
    if more_tags:
        # Every tag asked for was set (or none: the push failed as a whole).
        headers["OCI-Tag"] = ", ".join(more_tags)
    if manifest.subject is not None:
        headers["OCI-Subject"] = str(manifest.subject.digest)
    return Response(status_code=201, headers=headers)


async def delete_manifest(request: Request, name: str, reference: str) -> Response:
    target = await authorize(request, name, Permission.WRITE, "delete")
    _check_reference(reference)
    reg = registry_of(request)

    def work() -> Change:
        now = now_ms()
        with reg.db.write() as conn:
            image = content.find_image(conn, target.repo, target.name.image)
            if image is None:
                raise ManifestUnknown(f"manifest {reference} is not known to this image")
            if _is_digest(reference):
                return content.delete_manifest(
                    conn, image, reference, reg.timing, now, target.actor
                )
            deleted, _missing, change = content.delete_tags(
                conn, image, [reference], reg.timing, now, target.actor
            )
            if not deleted:
                raise ManifestUnknown(f"tag {reference} is not known to this image")
            return change

    change = await reg.run(work)
    publish(reg, target.repo.workspace_id, change)
    reg.wake_gc()
    return Response(status_code=202, headers={"Content-Length": "0"})


MAX_PAGE = 10_000


def _page_params(request: Request) -> tuple[int | None, str | None]:
    """``n`` and ``last``. A larger ``n`` than MAX_PAGE gets MAX_PAGE and a Link to the
    rest, which the spec allows ("fewer than n results ... when a Link header is
    provided")."""
    n_text = request.query_params.get("n")
    n = None
    if n_text is not None:
        if not (n_text.isascii() and n_text.isdigit()):
            raise RegistryError(
                f"n must be a non-negative integer, not {n_text!r}",
                code="PAGINATION_NUMBER_INVALID",
            )
        n = min(int(n_text), MAX_PAGE)
    return n, request.query_params.get("last")


async def list_tags(request: Request, name: str) -> Response:
    target = await authorize(request, name, Permission.READ, "pull")
    n, last = _page_params(request)
    reg = registry_of(request)

    def work() -> list[str]:
        with reg.db.read() as conn:
            image = content.find_image(conn, target.repo, target.name.image)
            if image is None:
                raise NameUnknown(f"image {name} is not known", detail={"name": name})
            if n == 0:
                return []
            # One more than asked tells whether a next page exists.
            return content.list_tags(conn, image, None if n is None else n + 1, last)

    tags = await reg.run(work)
    headers = {}
    if n is not None and len(tags) > n:
        tags = tags[:n]
        headers["Link"] = f'</v2/{name}/tags/list?n={n}&last={quote(tags[-1])}>; rel="next"'
    return JSONResponse({"name": name, "tags": tags}, headers=headers)


async def catalog(request: Request) -> Response:
    identity = await identify(request, "registry:catalog:*")
    if not identity.token_allows("registry", "catalog", "*"):
        from app.registry.errors import Unauthorized
        from app.registry.oci.access import challenge

        raise Unauthorized(
            "the token does not grant registry:catalog:*",
            headers=challenge(request, "registry:catalog:*", "insufficient_scope"),
        )
    n, last = _page_params(request)
    reg = registry_of(request)

    def work() -> list[str]:
        with reg.db.read() as conn:
            readable = accounts.readable_repository_ids(conn, identity.user)
            q = (
                select(
                    s.workspaces.c.slug, s.repositories.c.slug, s.images.c.name, s.repositories.c.id
                )
                .select_from(s.images)
                .join(s.repositories, s.repositories.c.id == s.images.c.repository_id)
                .join(s.workspaces, s.workspaces.c.id == s.repositories.c.workspace_id)
                .where(
                    s.images.c.id.in_(select(s.manifests.c.image_id)),
                    s.images.c.trashed_at.is_(None),
                )
            )
            names = sorted(
                f"{ws}/{repo}/{img}"
                for ws, repo, img, rid in conn.execute(q)
                if readable is None or rid in readable
            )
        return names

    names = await reg.run(work)
    if last is not None:
        names = [x for x in names if x > last]
    headers = {}
    if n is not None:
        more = len(names) > n
        names = names[:n]
        if more and names:
            headers["Link"] = f'</v2/_catalog?n={n}&last={quote(names[-1])}>; rel="next"'
    return JSONResponse({"repositories": names}, headers=headers)


async def referrers(request: Request, name: str, digest_text: str) -> Response:
    target = await authorize(request, name, Permission.READ, "pull")
    try:
        digest = Digest.parse(digest_text)
    except DigestError as exc:
        raise DigestInvalid(str(exc)) from None
    artifact_type = request.query_params.get("artifactType")
    reg = registry_of(request)

    def work() -> list[dict[str, Any]]:
        with reg.db.read() as conn:
            image = content.find_image(conn, target.repo, target.name.image)
            if image is None:
                return []
            return content.referrers(conn, image, str(digest), artifact_type)

    found = await reg.run(work)
    headers = {"Content-Type": mt.OCI_INDEX}
    if artifact_type is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    body = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found}
    return Response(json.dumps(body).encode(), status_code=200, headers=headers)
