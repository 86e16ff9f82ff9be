"""Preconditions on destructive calls: a stale client never deletes the wrong thing.

The management API addresses images by id (names contain ``/``). Ids are never
handed out twice (app.registry.db.schema.entity_table), and on top of that every
call that deletes through an image id must say which image it means: ``If-Match``
with the image's ETag, which listings (``etag``) and ``GET /images/{id}`` (the
``ETag`` header) return. The ETag is the id and the image's full name, so a script
that knows the name can also write it: ``If-Match: "42:acme/web/frontend"``.
``If-Match: *`` (RFC 9110) means "whatever image has this id now" and is accepted for
callers who want that explicitly.

A tag delete may also name the digest the caller saw the tag on: if the tag has
moved since (someone pushed it again), it is left alone and reported as changed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from app.registry.errors import RegistryError

IfMatch = Annotated[
    str,
    Header(
        description="the image's ETag (from a listing or GET): which image is meant; "
        "without it the answer is 428"
    ),
]
MISSING_MESSAGE = (
    "deleting through an image id needs If-Match with the image's ETag (from a listing or "
    "GET /images/{id}), so that a stale id never reaches another image"
)


class PreconditionFailed(RegistryError):
    status = 412
    code = "PRECONDITION_FAILED"


def image_etag(image_id: int, full_name: str) -> str:
    return f'"{image_id}:{full_name}"'


def _etags(header: str) -> list[str]:
    """The entity tags of an If-Match header (a list; commas inside quotes kept)."""
    tags: list[str] = []
    current = ""
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            tags.append(current.strip())
            current = ""
        else:
            current += ch
    tags.append(current.strip())
    return [t for t in tags if t]


def require_image_match(if_match: str, image_id: int, full_name: str, doing: str) -> None:
    """Refuse (412) a call whose If-Match is not the image's ETag now. (A call
    without If-Match never gets here: the API's request validation answers 428.)"""
    current = image_etag(image_id, full_name)
    given = _etags(if_match)
    if "*" in given or current in given:
        return
    raise PreconditionFailed(
        f"image {image_id} is {full_name}, not the image the request names ({if_match}); "
        "list the images again",
        detail={"image_id": image_id, "etag": current, "if_match": if_match},
    )
