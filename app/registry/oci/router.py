"""Routing ``/v2/...``: names contain ``/``, so the path is parsed from the right."""

from __future__ import annotations

import json
import re

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.registry.db.engine import Busy
from app.registry.errors import RegistryError, Unsupported
from app.registry.oci import blobs, manifests
from app.registry.oci.access import identify

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


async def base(request: Request) -> Response:
    try:
        await identify(request)
    except RegistryError as exc:
        return error_response(exc)
    return JSONResponse({}, headers=API_VERSION)


async def dispatch(request: Request) -> Response:
    path: str = request.path_params["path"]
    try:
        if path == "_catalog":
            if request.method != "GET":
                raise Unsupported(f"{request.method} is not supported on the catalog")
            return await manifests.catalog(request)
        for pattern, methods in _PATTERNS:
            match = pattern.match(path)
            if match is None:
                continue
            handler = methods.get(request.method)
            if handler is None:
                raise Unsupported(f"{request.method} is not supported here")
            groups = match.groupdict()
            args = [groups["name"]] + ([groups["ref"]] if "ref" in groups else [])
            response: Response = await handler(request, *args)  # type: ignore[operator]
            response.headers.update(API_VERSION)
            return response
        raise RegistryError(f"no such endpoint /v2/{path}", status=404, code="NOT_FOUND")
    except RegistryError as exc:
        return error_response(exc)
    except ClientDisconnect:
        # The client hung up mid-body; the handler has already undone its partial write.
        return Response(status_code=400)
    except Busy:
        return busy_response()


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


ALL_METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]


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
    Route("/v2/", base, methods=["GET", "HEAD"]),
    Route("/v2", base, methods=["GET", "HEAD"]),
    Route("/v2/{path:oci_path}", dispatch, methods=ALL_METHODS),
]
