"""``/auth/token``: the Docker/OCI token endpoint (GET with Basic credentials, or
POST with an OAuth2 password grant)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.registry.auth import SERVICE, parse_scopes
from app.registry.errors import RegistryError, Unauthorized
from app.registry.oci.router import error_response
from app.registry.service import Registry


async def token(request: Request) -> Response:
    reg: Registry = request.app.state.registry
    try:
        if request.method == "POST":
            form = await request.form()
            if form.get("grant_type") != "password":
                raise RegistryError("only grant_type=password is supported", code="UNSUPPORTED")
            name, password = str(form.get("username", "")), str(form.get("password", ""))
            user = await reg.run(reg.auth.check_password, name, password)
            scopes = parse_scopes([str(v) for v in form.getlist("scope")])
            service = str(form.get("service") or SERVICE)
        else:
            header = request.headers.get("authorization", "")
            scheme, _, value = header.partition(" ")
            user = (
                await reg.run(reg.auth.from_basic, value.strip())
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

        def issue() -> dict[str, object]:
            with reg.db.read() as conn:
                return reg.auth.issue_token(conn, user, scopes, service)

        body = await reg.run(issue)
    except RegistryError as exc:
        return error_response(exc)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
