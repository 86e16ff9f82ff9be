"""Errors the registry raises, with the OCI error code each one maps to.

Raised anywhere below the HTTP layer; the OCI API renders them as the distribution
spec's ``{"errors": [...]}`` body, the management API as ``{"error": {...}}``.
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    status = 400
    code = "UNSUPPORTED"

    def __init__(
        self,
        message: str,
        *,
        detail: Any = None,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = headers or {}


class Unauthorized(RegistryError):
    status = 401
    code = "UNAUTHORIZED"


class Denied(RegistryError):
    status = 403
    code = "DENIED"


class NameInvalid(RegistryError):
    status = 400
    code = "NAME_INVALID"


class NameUnknown(RegistryError):
    status = 404
    code = "NAME_UNKNOWN"


class BlobUnknown(RegistryError):
    status = 404
    code = "BLOB_UNKNOWN"


class BlobUploadUnknown(RegistryError):
    status = 404
    code = "BLOB_UPLOAD_UNKNOWN"


class BlobUploadInvalid(RegistryError):
    status = 400
    code = "BLOB_UPLOAD_INVALID"


class DigestInvalid(RegistryError):
    status = 400
    code = "DIGEST_INVALID"


class ManifestUnknown(RegistryError):
    status = 404
    code = "MANIFEST_UNKNOWN"


class ManifestInvalid(RegistryError):
    status = 400
    code = "MANIFEST_INVALID"


class ManifestBlobUnknown(RegistryError):
    status = 400
    code = "MANIFEST_BLOB_UNKNOWN"


class TagInvalid(RegistryError):
    status = 400
    code = "TAG_INVALID"


class SizeInvalid(RegistryError):
    status = 400
    code = "SIZE_INVALID"


class RangeInvalid(RegistryError):
    """An upload chunk that does not continue the upload (416, as the spec asks)."""

    status = 416
    code = "BLOB_UPLOAD_INVALID"


class RangeNotSatisfiable(RegistryError):
    """A blob GET's Range outside the blob. The spec has no range code; this one is
    its nearest ("size invalid"), and BLOB_UPLOAD_INVALID would name an upload."""

    status = 416
    code = "SIZE_INVALID"


class TooLarge(RegistryError):
    status = 413
    code = "SIZE_INVALID"


class Conflict(RegistryError):
    status = 409
    code = "DENIED"


class NotFound(RegistryError):
    """A management-API resource that does not exist (or the caller cannot see)."""

    status = 404
    code = "NOT_FOUND"


class TooManyRequests(RegistryError):
    status = 503
    code = "TOOMANYREQUESTS"


class Unsupported(RegistryError):
    status = 405
    code = "UNSUPPORTED"
