"""Routing ``/v2/...``: names contain ``/``, so the path is parsed from the right.

Everything under ``/v2`` answers in the distribution spec's error shape, whatever the
method and whatever goes wrong (the management API's own shape is for ``/api/v1``):
the routes take every method, and an unexpected failure is logged and answered 500
``UNKNOWN`` (Distribution's code for it; the spec has none).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import IntegrityError
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, request_response
from starlette.types import Receive, Scope, Send

from app.core.permissions import Permission
from app.registry.blobstore import StoreUnavailable
from app.registry.db.engine import Busy
from app.registry.errors import (
    BlobUploadUnknown,
    DigestInvalid,
    ManifestInvalid,
    ManifestUnknown,
    RegistryError,
    Unsupported,
)
from app.registry.oci import blobs, manifests
from app.registry.oci.access import authorize, identify

log = logging.getLogger(__name__)

_PATTERNS: list[tuple[re.Pattern[str], dict[str, object]]] = [
    (re.compile(r"^(?P<name>.+)/tags/list\Z", re.DOTALL), {"GET": manifests.list_tags}),
    (
        re.compile(r"^(?P<name>.+)/manifests/(?P<ref>[^/]+)\Z", re.DOTALL),
        {
            "GET": manifests.get_manifest,
            "HEAD": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    (re.compile(r"^(?P<name>.+)/blobs/uploads/?\Z", re.DOTALL), {"POST": blobs.start_upload}),
    (
        re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<ref>[^/]+)\Z", re.DOTALL),
        {
            "GET": blobs.upload_status,
            "PATCH": blobs.patch_upload,
            "PUT": blobs.put_upload,
            "DELETE": blobs.cancel_upload,
        },
    ),
    (
        re.compile(r"^(?P<name>.+)/blobs/(?P<ref>[^/]+)\Z", re.DOTALL),
        {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    (
        re.compile(r"^(?P<name>.+)/referrers/(?P<ref>[^/]+)\Z", re.DOTALL),
        {"GET": manifests.referrers},
    ),
]


# A reference holding "/" (an escaped %2F) matches no pattern above; these say what
# is wrong with it in the spec's terms instead of "no such endpoint".
_MALFORMED: list[tuple[re.Pattern[str], Callable[[str, str], RegistryError]]] = [
    (
        re.compile(r"^(?P<name>.+?)/blobs/uploads/(?P<ref>.+)\Z", re.DOTALL),
        lambda method, ref: BlobUploadUnknown(f"no upload {ref!r}", detail={"uuid": ref}),
    ),
    (
        re.compile(r"^(?P<name>.+?)/(?:blobs|referrers)/(?P<ref>.+)\Z", re.DOTALL),
        lambda method, ref: DigestInvalid(f"malformed digest {ref!r}", detail={"digest": ref}),
    ),
    (
        re.compile(r"^(?P<name>.+?)/manifests/(?P<ref>.+)\Z", re.DOTALL),
        lambda method, ref: (
            ManifestInvalid(f"{ref!r} is neither a tag nor a digest", detail={"tag": ref})
            if method == "PUT"
            else ManifestUnknown(f"{ref!r} is neither a tag nor a digest")
        ),
    ),
]

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}


def error_response(exc: RegistryError) -> Response:
    body = {"errors": [{"code": exc.code, "message": exc.message, "detail": exc.detail}]}
    # Clients check the version header on 401s too (the spec asks for it on 200 and 401).
    headers = {**API_VERSION, **exc.headers}
    return Response(
        json.dumps(body).encode(),
        status_code=exc.status,
        headers=headers,
        media_type="application/json",
    )


def _oci_errors(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Every failure of ``endpoint`` as the spec's error body."""

    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except RegistryError as exc:
            return error_response(exc)
        except ClientDisconnect:
            # The client hung up mid-body; the handler has already undone its write.
            return Response(status_code=400)
        except Busy:
            return busy_response()
        except IntegrityError:
            # Another node (or request) wrote the same row first (a tag, a manifest):
            # the retry finds it there.
            log.warning(
                "concurrent write: %s %s; asking to retry", request.method, request.url.path
            )
            return busy_response()
        except StoreUnavailable:
            log.exception("%s %s: the blob store failed", request.method, request.url.path)
            return error_response(
                RegistryError(
                    "the blob store is unavailable; retry shortly",
                    status=503,
                    code="UNAVAILABLE",
                    headers={"Retry-After": "5"},
                )
            )
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return error_response(
                RegistryError("internal error; the registry logged it", status=500, code="UNKNOWN")
            )

    return guarded


def _allow(methods: list[str], method: str) -> None:
    """Answer OPTIONS, and refuse a method the endpoint lacks, naming the ones it has."""
    allowed = ", ".join([*methods, "OPTIONS"])
    if method == "OPTIONS":
        raise _Options(allowed)
    if method not in methods:
        raise Unsupported(f"{method} is not supported here", headers={"Allow": allowed})


class _Options(Exception):
    def __init__(self, allowed: str) -> None:
        self.allowed = allowed


@_oci_errors
async def base(request: Request) -> Response:
    try:
        _allow(["GET", "HEAD"], request.method)
    except _Options as exc:
        return Response(status_code=204, headers={"Allow": exc.allowed, **API_VERSION})
    await identify(request)
    return JSONResponse({}, headers=API_VERSION)


@_oci_errors
async def dispatch(request: Request) -> Response:
    path: str = request.path_params["path"]
    try:
        return await _route(request, path)
    except _Options as exc:
        return Response(status_code=204, headers={"Allow": exc.allowed, **API_VERSION})


async def _route(request: Request, path: str) -> Response:
    if path == "_catalog":
        _allow(["GET"], request.method)
        return await manifests.catalog(request)
    for pattern, methods in _PATTERNS:
        match = pattern.match(path)
        if match is None:
            continue
        _allow(list(methods), request.method)
        handler = methods[request.method]
        groups = match.groupdict()
        args = [groups["name"]] + ([groups["ref"]] if "ref" in groups else [])
        response: Response = await handler(request, *args)  # type: ignore[operator]
        response.headers.update(API_VERSION)
        return response
    for pattern, error in _MALFORMED:
        match = pattern.match(path)
        if match is not None:
            # Credentials and the name first, as on every endpoint.
            await authorize(request, match.group("name"), Permission.READ, "pull")
            raise error(request.method, match.group("ref"))
    raise Unsupported(f"no such endpoint /v2/{path}", status=404)


def busy_response() -> Response:
    """A lock wait ran out (DESIGN.md, race safety rule 5): ask the client to retry."""
    return error_response(
        RegistryError(
            "the registry is busy; retry shortly",
            status=503,
            code="TOOMANYREQUESTS",
            headers={"Retry-After": "1"},
        )
    )


class _AnyMethod:
    """An endpoint for every HTTP method: Starlette answers methods a route does not
    list itself, in a plain 405 the error handlers would put in the API's shape."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = request_response(endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class _AnyPath(Convertor[str]):
    """Like Starlette's "path", but a newline does not end it. With "path", a name
    holding a newline fell through to another router's 404, and a trailing one was
    silently dropped ("/v2/x/manifests/v1%0A" arrived as tag "v1")."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("oci_path", _AnyPath())

routes = [
    Route("/v2/", _AnyMethod(base)),
    Route("/v2", _AnyMethod(base)),
    Route("/v2/{path:oci_path}", _AnyMethod(dispatch)),
]
