"""One place that builds HTTP clients for a connection and turns what goes wrong on
the wire into the client's error hierarchy (:mod:`app.client.errors`).

Every client in :mod:`app.client` (the Berth management API, the OCI Distribution
API of any registry) is built with :func:`build_client` and sends through
:func:`send`, so they agree on TLS, timeouts, the User-Agent and on what an admin is
told when a request fails::

    settings = ConnectionSettings("https://registry.example", ca_bundle="/etc/my-ca.pem")
    async with build_client(settings, auth=RegistryAuth(user, password)) as http:
        response = await send(http, "GET", "/v2/", what="Checking the registry")

TLS trusts the system's CA store (what the admin's distribution ships and the
admin may have extended), not a bundle vendored in a Python package. A CA bundle
given for a private registry is trusted *in addition*: registries often redirect
blob downloads to object storage with a public certificate.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app import __version__
from app.client.errors import (
    ClientError,
    ConnectionFailed,
    PermissionDenied,
    ProtocolError,
    ServerError,
    ServiceUnavailable,
    TlsError,
    for_status,
)
from app.client.network import ClosingTransport

USER_AGENT = f"Berth/{__version__} (+https://github.com/berth; httpx/{httpx.__version__})"

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 16
# An error body is read only to find a sentence to show; never hold more than this.
_ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """How to reach one registry.

    ``verify_tls=False`` accepts any certificate (an admin's explicit choice for a
    test registry); ``ca_bundle`` adds a PEM file of CAs to the system's. Timeouts
    bound every phase of a request (connect, each read, each write, waiting for a
    pooled connection), so no call can hang forever.
    """

    base_url: str
    verify_tls: bool = True
    ca_bundle: str | Path | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)


def ssl_context(verify_tls: bool = True, ca_bundle: str | Path | None = None) -> ssl.SSLContext:
    """The TLS context for a connection: system CAs plus ``ca_bundle``, or none."""
    if not verify_tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context()  # loads the system's default CA store
    if ca_bundle is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca_bundle))
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"The CA bundle {ca_bundle} cannot be used: {exc}") from exc
    return ctx


def build_client(
    settings: ConnectionSettings,
    *,
    auth: httpx.Auth | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for ``settings`` (the caller closes it).

    ``transport`` replaces the network (``httpx.MockTransport`` in unit tests).
    Redirects are followed: registries send blob downloads to object storage, and
    httpx drops the Authorization header when a redirect leaves the origin.
    """
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
    )
    base_headers = {"User-Agent": USER_AGENT}
    base_headers.update(headers or {})
    if transport is not None:
        return httpx.AsyncClient(
            base_url=settings.base_url,
            auth=auth,
            timeout=settings.timeout,
            headers=base_headers,
            follow_redirects=True,
            transport=transport,
        )
    verify = ssl_context(settings.verify_tls, settings.ca_bundle)
    return httpx.AsyncClient(
        base_url=settings.base_url,
        auth=auth,
        timeout=settings.timeout,
        headers=base_headers,
        follow_redirects=True,
        # verify and limits still reach the transports of proxies from the environment.
        verify=verify,
        limits=limits,
        # Closes every connection it opened, even those httpcore loses (app/client/network.py).
        transport=ClosingTransport(verify, limits),
    )


# --- translating failures ---------------------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _host(request: httpx.Request | None) -> str:
    if request is None:
        return "the registry"
    url = request.url
    return f"{url.host}:{url.port}" if url.port else url.host


def translate_exception(exc: httpx.HTTPError, *, what: str) -> ClientError:
    """The error to show for an httpx failure while doing ``what``."""
    try:
        request: httpx.Request | None = exc.request
    except RuntimeError:  # an exception raised outside a request has none
        request = None
    host = _host(request)
    causes = list(_causes(exc))
    if isinstance(exc, httpx.TimeoutException):
        phase = {
            httpx.ConnectTimeout: "connecting to",
            httpx.ReadTimeout: "waiting for an answer from",
            httpx.WriteTimeout: "sending to",
            httpx.PoolTimeout: "waiting for a free connection to",
        }.get(type(exc), "talking to")
        return ConnectionFailed(f"{what}: timed out {phase} {host}.")
    if isinstance(exc, httpx.ConnectError | httpx.ProxyError):
        for cause in causes:
            if isinstance(cause, ssl.SSLCertVerificationError):
                reason = cause.verify_message or str(cause)
                return TlsError(
                    f"{what}: the TLS certificate of {host} is not trusted ({reason}). "
                    "Give the CA bundle that signed it, or turn verification off for "
                    "a test registry."
                )
            if isinstance(cause, ssl.SSLError):
                return TlsError(f"{what}: the TLS handshake with {host} failed ({cause}).")
            if isinstance(cause, socket.gaierror):
                return ConnectionFailed(f"{what}: the host name {host} cannot be resolved.")
            if isinstance(cause, ConnectionRefusedError):
                return ConnectionFailed(
                    f"{what}: {host} refused the connection (is the registry running, "
                    "and is the port right?)."
                )
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
            return TlsError(f"{what}: the TLS connection to {host} failed ({text}).")
        if "Name or service not known" in text or "nodename nor servname" in text:
            return ConnectionFailed(f"{what}: the host name {host} cannot be resolved.")
        if "Connection refused" in text:
            return ConnectionFailed(f"{what}: {host} refused the connection.")
        return ConnectionFailed(f"{what}: cannot connect to {host} ({text or type(exc).__name__}).")
    if isinstance(exc, httpx.RemoteProtocolError):
        return ProtocolError(
            f"{what}: {host} broke off the answer or answered malformed HTTP ({exc})."
        )
    if isinstance(exc, httpx.NetworkError):
        return ConnectionFailed(f"{what}: the connection to {host} failed ({exc}).")
    if isinstance(exc, httpx.TooManyRedirects):
        return ProtocolError(f"{what}: {host} redirected too many times.")
    if isinstance(exc, httpx.DecodingError):
        return ProtocolError(f"{what}: {host} sent a body that cannot be decoded ({exc}).")
    return ClientError(f"{what}: {exc or type(exc).__name__}")


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None, Any]:
    """(code, message, detail) from an OCI ``{"errors": [...]}`` or a Berth
    ``{"error": {...}}`` body; all None when the body is neither."""
    try:
        body = json.loads(response.content[:_ERROR_BODY_LIMIT])
    except (ValueError, UnicodeDecodeError):
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    entry: Any = None
    if isinstance(body.get("errors"), list) and body["errors"]:
        entry = body["errors"][0]
    elif isinstance(body.get("error"), dict):
        entry = body["error"]
    if not isinstance(entry, dict):
        return None, None, None
    code = entry.get("code") if isinstance(entry.get("code"), str) else None
    message = entry.get("message") if isinstance(entry.get("message"), str) else None
    return code, message, entry.get("detail")


_STATUS_WORDS = {
    400: "rejected the request",
    401: "needs valid credentials (missing, wrong or expired)",
    403: "denied access",
    404: "has no such thing (perhaps it was deleted meanwhile)",
    405: "does not allow this operation",
    409: "reported a conflict",
    412: "has changed since it was listed; nothing was deleted",
    429: "is rate-limiting requests; try again later",
    500: "failed with an internal error",
    502: "is unreachable behind its proxy (bad gateway)",
    503: "is busy or unavailable; try again later",
    504: "did not answer its proxy in time (gateway timeout)",
}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from registries, not worth parsing


def error_for_response(response: httpx.Response, *, what: str) -> ServerError:
    """The error for a non-success answer (the body must have been read)."""
    status = response.status_code
    code, message, detail = _error_fields(response)
    host = _host(response.request)
    summary = _STATUS_WORDS.get(status, f"answered HTTP {status}")
    text = f"{what}: {host} {summary}"
    if message:
        text += f": {message}" + (f" ({code})" if code else "")
    elif code:
        text += f" ({code})"
    kind = for_status(status)
    if status == 401 and "insufficient_scope" in response.headers.get("www-authenticate", ""):
        # Logged in, but the token service granted less than this needs (or the
        # repository is hidden from this user): a permission problem, not a login one.
        kind = PermissionDenied
        text = f"{what}: {host} does not let this account do that"
        text += f": {message}" if message else ""
    error = kind(text + ".", status=status, code=code, detail=detail)
    if isinstance(error, ServiceUnavailable):
        error.retry_after = _retry_after(response)
    return error


def raise_for_status(response: httpx.Response, *, what: str) -> None:
    if not response.is_success:
        raise error_for_response(response, what=what)


def check_length(response: httpx.Response, *, what: str) -> None:
    """Fail when the body is shorter or longer than the Content-Length announced:
    a truncated manifest must not be taken for a small one."""
    if response.request.method == "HEAD" or response.status_code in (204, 304):
        return
    announced = response.headers.get("content-length")
    if announced is None or not announced.isdigit():
        return
    encoded = response.headers.get("content-encoding", "identity") not in ("", "identity")
    # With a content encoding the header counts the encoded bytes on the wire.
    received = response.num_bytes_downloaded if encoded else len(response.content)
    if received != int(announced):
        raise ProtocolError(
            f"{what}: {_host(response.request)} announced {announced} bytes but sent {received}."
        )


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    ok: tuple[int, ...] = (),
    **kwargs: Any,
) -> httpx.Response:
    """Send a request, read the whole answer, and raise the right
    :class:`~app.client.errors.ClientError` for anything but success.

    ``ok`` lists extra statuses the caller handles itself (e.g. 404 when probing).
    ``what`` starts every error message ("Listing tags of acme/app").
    Cancellation (``asyncio.CancelledError``) passes straight through.
    """
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise translate_exception(exc, what=what) from exc
    if response.status_code not in ok:
        raise_for_status(response, what=what)
    check_length(response, what=what)
    return response


def json_body(response: httpx.Response, *, what: str) -> Any:
    """The parsed JSON body, or a :class:`ProtocolError` naming what was wrong."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"{what}: {_host(response.request)} answered something that is not JSON ({exc})."
        ) from exc


def json_object(response: httpx.Response, *, what: str) -> dict[str, Any]:
    body = json_body(response, what=what)
    if not isinstance(body, dict):
        raise ProtocolError(
            f"{what}: {_host(response.request)} answered JSON that is not an object."
        )
    return body
