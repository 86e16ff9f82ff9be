"""The client's one error hierarchy. Every failure a caller can expect surfaces as
one of these, with a sentence fit to show an admin::

    ClientError
    ├── ConnectionFailed        nothing answered: refused, unresolvable, timeout
    │   └── TlsError            the TLS handshake or certificate check failed
    ├── ProtocolError           the server answered nonsense (bad JSON, short body)
    └── ServerError             the server answered with an error status
        ├── AuthenticationFailed    401: credentials missing, wrong or expired
        ├── PermissionDenied        403, or 401 ``insufficient_scope`` after a token:
        │                           ``.required`` / ``.repository`` say what is missing
        ├── NotFound                404: gone (perhaps deleted meanwhile) or never there
        ├── Conflict                409
        ├── Stale                   412: the image or tag changed since it was
        │                           listed (a precondition failed); refresh
        ├── Unsupported             the registry does not offer this (405, 501)
        │   ├── TagDeleteUnsupported    deletes only by digest (Distribution 2.8
        │   │                           answers 400 to a tag delete)
        │   └── DeletesDisabled         deletes are turned off by the operator
        │                               (Distribution: 405 UNSUPPORTED)
        └── ServiceUnavailable      5xx, 429: busy or broken; worth a retry

``Cancelled`` is not an error: callers use asyncio's CancelledError.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of every error the client raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectionFailed(ClientError):
    pass


class TlsError(ConnectionFailed):
    pass


class ProtocolError(ClientError):
    pass


class ServerError(ClientError):
    def __init__(
        self, message: str, *, status: int, code: str | None = None, detail: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail


class AuthenticationFailed(ServerError):
    pass


class PermissionDenied(ServerError):
    @property
    def required(self) -> str | None:
        return self.detail.get("required") if isinstance(self.detail, dict) else None

    @property
    def repository(self) -> str | None:
        return self.detail.get("repository") if isinstance(self.detail, dict) else None


class NotFound(ServerError):
    pass


class Conflict(ServerError):
    pass


class Stale(ServerError):
    pass


class Unsupported(ServerError):
    pass


class TagDeleteUnsupported(Unsupported):
    pass


class DeletesDisabled(Unsupported):
    pass


class ServiceUnavailable(ServerError):
    retry_after: float | None = None  # seconds, from a Retry-After header


def for_status(status: int) -> type[ServerError]:
    if status == 401:
        return AuthenticationFailed
    if status == 403:
        return PermissionDenied
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status == 412:
        return Stale
    if status in (405, 501):
        return Unsupported
    if status == 429 or status >= 500:
        return ServiceUnavailable
    return ServerError
