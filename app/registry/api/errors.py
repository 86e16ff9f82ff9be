"""The management API's one error shape, and the handlers that render every failure
in it (see the package docstring): ``{"error": {"code", "message", "detail"}}``.

The code is derived from the status, so errors raised by shared layers
(``accounts``, ``content``) with OCI-flavoured codes read the same as ours.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.core.permissions import Permission
from app.registry.api.preconditions import MISSING_MESSAGE
from app.registry.db.engine import Busy
from app.registry.errors import RegistryError

CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    428: "PRECONDITION_REQUIRED",
    429: "TOO_MANY_REQUESTS",
    503: "BUSY",
}
RETRY_AFTER_S = 1


class ErrorInfo(BaseModel):
    code: str
    message: str
    detail: Any = None


class ErrorBody(BaseModel):
    error: ErrorInfo


class Forbidden(RegistryError):
    status = 403
    code = "FORBIDDEN"


def repository_forbidden(need: Permission, repository: str, doing: str) -> Forbidden:
    return Forbidden(
        f"{need.label} permission on {repository} is required to {doing}",
        detail={"required": need.label, "repository": repository},
    )


def workspace_admin_forbidden(workspace: str, doing: str) -> Forbidden:
    return Forbidden(
        f"workspace admin on {workspace} is required to {doing}",
        detail={"required": "workspace_admin", "workspace": workspace},
    )


def superuser_forbidden(doing: str) -> Forbidden:
    return Forbidden(
        f"superuser is required to {doing}",
        detail={"required": "superuser"},
    )


def error_response(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> Response:
    body = {"error": {"code": CODES.get(status, "ERROR"), "message": message, "detail": detail}}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


async def _registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return error_response(exc.status, exc.message, exc.detail, exc.headers)


async def _busy(request: Request, exc: Exception) -> Response:
    return error_response(
        503,
        "the registry is busy; retry shortly",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if any(tuple(e.get("loc", ())) == ("header", "if-match") for e in exc.errors()):
        # RFC 6585: the request lacks the precondition this operation insists on.
        return error_response(428, MISSING_MESSAGE, {"required": "If-Match"})
    problems = [
        {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
        for e in exc.errors()
    ]
    first = problems[0] if problems else {"where": "request", "problem": "invalid"}
    return error_response(400, f"{first['where']}: {first['problem']}", problems)


_PLACEHOLDER = re.compile(r"\{[^}/]+\}")


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(template)
    return re.compile("[^/]+".join(re.escape(p) for p in parts))


def _allowed_methods(request: Request) -> str:
    """The methods the OpenAPI document lists for this path (Starlette would name only
    the first matching route's, and FastAPI makes one route per method)."""
    matching = [
        (len(_PLACEHOLDER.findall(template)), operations)
        for template, operations in request.app.openapi().get("paths", {}).items()
        if _path_pattern(template).fullmatch(request.url.path)
    ]
    # As in OpenAPI, a literal segment beats a template (".../tags/delete" is the bulk
    # delete, not a tag named "delete").
    fewest = min((n for n, _ in matching), default=0)
    methods = {m.upper() for n, ops in matching if n == fewest for m in ops if m in _HTTP_METHODS}
    return ", ".join(sorted(methods))


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return error_response(exc.status_code, message, None, headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Logged by the server as it propagates; the client gets the one shape, no internals.
    return JSONResponse(
        {"error": {"code": "INTERNAL", "message": "internal error", "detail": None}},
        status_code=500,
    )


def install(app: FastAPI) -> None:
    """Render every failure that escapes an endpoint in the one shape."""
    app.add_exception_handler(RegistryError, _registry_error)
    app.add_exception_handler(Busy, _busy)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses an operation may answer."""
    return {
        status: {"model": ErrorBody, "description": CODES.get(status, "error")}
        for status in statuses
    }
