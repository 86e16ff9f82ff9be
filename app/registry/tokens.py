"""``/auth/token``: the Docker/OCI token endpoint (GET with Basic credentials, or
POST with an OAuth2 password grant)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.datastructures import MultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.registry.auth import SERVICE, parse_scopes
from app.registry.db.engine import Busy
from app.registry.errors import RegistryError, Unauthorized
from app.registry.oci.access import client_address
from app.registry.oci.router import busy_response, error_response
from app.registry.service import Registry

MAX_FORM = 64 * 1024


async def _form(request: Request) -> MultiDict:
    """The OAuth2 token request body: always application/x-www-form-urlencoded (RFC
    6749 §4.3.2), so the standard library parses it; multipart is not accepted."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise RegistryError(
            "a token request body must be application/x-www-form-urlencoded",
            code="UNSUPPORTED",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise RegistryError("token request too large", status=413, code="SIZE_INVALID")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RegistryError("token request is not UTF-8", code="UNSUPPORTED") from None
    return MultiDict(parse_qsl(text, keep_blank_values=True))


async def token(request: Request) -> Response:
    reg: Registry = request.app.state.registry
    try:
        if request.method == "POST":
            form = await _form(request)
            if form.get("grant_type") != "password":
                raise RegistryError("only grant_type=password is supported", code="UNSUPPORTED")
            name, password = str(form.get("username", "")), str(form.get("password", ""))
            user = await reg.run(reg.auth.check_password, name, password, client_address(request))
            scopes = parse_scopes([str(v) for v in form.getlist("scope")])
            service = str(form.get("service") or SERVICE)
        else:
            header = request.headers.get("authorization", "")
            scheme, _, value = header.partition(" ")
            user = (
                await reg.run(reg.auth.from_basic, value.strip(), client_address(request))
                if scheme.lower() == "basic"
                else None
            )
            scopes = parse_scopes(request.query_params.getlist("scope"))
            service = request.query_params.get("service") or SERVICE
        if user is None:
            raise Unauthorized(
                "valid credentials are required for a token",
                headers={"WWW-Authenticate": 'Basic realm="berth-registry"'},
            )
        if service != SERVICE:
            # Tokens say whom they are for, and this server only answers for itself.
            raise RegistryError(
                f"this token server issues tokens for {SERVICE!r} only, not {service!r}",
                code="UNSUPPORTED",
            )

        def issue() -> dict[str, object]:
            with reg.db.read() as conn:
                return reg.auth.issue_token(conn, user, scopes, service)

        body = await reg.run(issue)
    except RegistryError as exc:
        return error_response(exc)
    except Busy:
        return busy_response()
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
