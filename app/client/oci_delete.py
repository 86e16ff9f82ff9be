"""Deleting tags and images on any OCI registry, each way a separate function the
UI picks after the admin confirmed exactly that.

* :func:`delete_tag`: the OCI tag delete (``DELETE /v2/<name>/manifests/<tag>``).
  Registries that only delete by digest (CNCF Distribution 2.8 answers 400)
  raise :class:`TagDeleteUnsupported`; then the UI offers one of:
* :func:`delete_tag_with_placeholder` (the safe path): point the tag at a tiny
  placeholder manifest made just for this (empty config, no layers, an
  annotation saying what it is, a random nonce so its digest is unique), then
  delete the placeholder by digest. Only that tag goes; other tags on the old
  digest survive. If the tag was the digest's last, the old manifest is left
  untagged: Distribution's GC then frees it only with ``--delete-untagged``, so
  for a last tag :func:`delete_digest` is the better choice (see
  :meth:`app.client.scan.RegistryScan.plan_tag_delete`).
* :func:`delete_digest`: delete a manifest by digest, and with it every tag in the
  repository that names it.
* :func:`delete_image`: delete every manifest of a repository by digest.

Every function that acts on a tag first checks that the tag still names the
digest the admin confirmed, so a tag re-pushed meanwhile is never deleted
(:class:`Conflict`). A registry with deletes turned off raises
:class:`DeletesDisabled` with a sentence saying so.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.client.capabilities import capabilities
from app.client.errors import (
    ClientError,
    Conflict,
    DeletesDisabled,
    NotFound,
    ServerError,
    TagDeleteUnsupported,
    Unsupported,
)
from app.client.oci import OciClient
from app.core import mediatypes as mt
from app.core.digests import Digest

PLACEHOLDER_ANNOTATION = "dev.berth.deletion-placeholder"
PLACEHOLDER_ARTIFACT_TYPE = "application/vnd.berth.deletion-placeholder.v1"
EMPTY_JSON = b"{}"  # the OCI 1.1 empty descriptor's content

DELETES_DISABLED_HINT = (
    "the registry has deletes turned off (CNCF Distribution: set "
    "storage.delete.enabled: true and restart it)"
)


def _explain(exc: ServerError, *, by_tag: bool, what: str) -> ClientError:
    """Turn a delete's raw error into the one the admin should read."""
    if exc.status == 405 or (exc.status == 400 and exc.code == "UNSUPPORTED"):
        return DeletesDisabled(
            f"{what}: {DELETES_DISABLED_HINT}. Nothing was deleted.",
            status=exc.status,
            code=exc.code,
            detail=exc.detail,
        )
    if by_tag and exc.status == 400:
        return TagDeleteUnsupported(
            f"{what}: this registry deletes manifests only by digest, not by tag. "
            "Nothing was deleted.",
            status=exc.status,
            code=exc.code,
            detail=exc.detail,
        )
    return exc


async def verify_tag(client: OciClient, name: str, tag: str, expected_digest: str) -> None:
    """Raise :class:`Conflict` unless ``tag`` still names ``expected_digest``."""
    current = await client.head_manifest(name, tag)
    if current.digest != expected_digest:
        raise Conflict(
            f"{name}:{tag} now names {current.digest}, not {expected_digest} as when you "
            "confirmed; nothing was deleted. Refresh and try again.",
            status=409,
        )


async def delete_tag(client: OciClient, name: str, tag: str, *, expected_digest: str) -> None:
    """The OCI tag delete: removes ``tag`` only (where the registry supports it)."""
    await verify_tag(client, name, tag, expected_digest)
    try:
        await client.delete_manifest(name, tag)
    except ServerError as exc:
        raise _explain(exc, by_tag=True, what=f"Deleting {name}:{tag}") from exc


def placeholder_manifest(name: str, tag: str, replaced: str, *, with_layer: bool) -> bytes:
    """The placeholder's bytes; ``with_layer`` adds the empty blob as a layer for
    registries that refuse a manifest without layers (OCI 1.1's advice)."""
    empty = {
        "mediaType": mt.OCI_EMPTY,
        "digest": str(Digest.of(EMPTY_JSON)),
        "size": len(EMPTY_JSON),
    }
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": PLACEHOLDER_ARTIFACT_TYPE,
        "config": empty,
        "layers": [empty] if with_layer else [],
        "annotations": {
            PLACEHOLDER_ANNOTATION: (
                f"Berth pointed {name}:{tag} here to delete that tag without deleting "
                f"{replaced}; this manifest is deleted right after and is safe to delete."
            ),
            "dev.berth.nonce": uuid.uuid4().hex,
            "org.opencontainers.image.created": dt.datetime.now(dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
        },
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class PlaceholderDeletion:
    placeholder_digest: str
    placeholder_size: int


async def delete_tag_with_placeholder(
    client: OciClient, name: str, tag: str, *, expected_digest: str
) -> PlaceholderDeletion:
    """The safe path for registries that delete only by digest: only ``tag`` goes,
    every other tag on ``expected_digest`` stays pullable."""
    what = f"Deleting {name}:{tag}"
    found = await capabilities(client, name)
    if found.deletes is False:
        # Known before touching anything: do not move the tag only to be refused.
        raise DeletesDisabled(f"{what}: {DELETES_DISABLED_HINT}. Nothing was deleted.", status=405)
    original = await client.get_manifest(name, tag)
    if original.digest != expected_digest:
        raise Conflict(
            f"{name}:{tag} now names {original.digest}, not {expected_digest} as when you "
            "confirmed; nothing was deleted. Refresh and try again.",
            status=409,
        )
    await client.push_blob(name, EMPTY_JSON)
    raw = placeholder_manifest(name, tag, expected_digest, with_layer=False)
    try:
        ref = await client.put_manifest(name, tag, raw, mt.OCI_MANIFEST)
    except ServerError as exc:
        if exc.status != 400:
            raise
        # Some registries want at least one layer: the empty blob will do.
        raw = placeholder_manifest(name, tag, expected_digest, with_layer=True)
        ref = await client.put_manifest(name, tag, raw, mt.OCI_MANIFEST)
    try:
        await client.delete_manifest(name, ref.digest)
    except ClientError as exc:
        error = _explain(exc, by_tag=False, what=what) if isinstance(exc, ServerError) else exc
        reason = error.message.removesuffix(" Nothing was deleted.")
        # The tag has moved already: put it back exactly as it was (same bytes,
        # same digest), or say where it is so the admin can finish.
        try:
            await client.put_manifest(name, tag, original.raw, original.media_type)
        except ClientError:
            error.message = (
                f"{reason} {name}:{tag} now names a Berth placeholder ({ref.digest}) "
                f"instead of {expected_digest}; delete that placeholder digest to finish."
            )
        else:
            error.message = (
                f"{reason} {name}:{tag} was put back on {expected_digest}: nothing was "
                f"deleted (the unused placeholder {ref.digest} waits for the registry's GC)."
            )
        error.args = (error.message,)
        if error is exc:
            raise
        raise error from exc
    return PlaceholderDeletion(ref.digest, ref.size)


async def delete_digest(client: OciClient, name: str, digest: str) -> None:
    """Delete the manifest ``digest`` in ``name``, and so every tag naming it."""
    try:
        await client.delete_manifest(name, digest)
    except ServerError as exc:
        raise _explain(exc, by_tag=False, what=f"Deleting {name}@{digest}") from exc


@dataclass
class ImageDeletion:
    """What deleting an image did, digest by digest."""

    deleted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # already gone: not a failure
    failed: dict[str, ClientError] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.failed


async def delete_image(
    client: OciClient,
    name: str,
    digests: Sequence[str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ImageDeletion:
    """Delete every manifest of ``name`` by digest (indexes before their children,
    in the order given). A registry with deletes off stops it at the first one.
    Cancelling stops after the request in flight; what was done is in the
    registry, and a new scan shows it."""
    result = ImageDeletion()
    unique = list(dict.fromkeys(digests))
    for done, digest in enumerate(unique, start=1):
        try:
            await delete_digest(client, name, digest)
        except NotFound:
            result.missing.append(digest)
        except (DeletesDisabled, Unsupported):
            raise
        except ClientError as exc:
            result.failed[digest] = exc
        else:
            result.deleted.append(digest)
        if progress is not None:
            progress(done, len(unique))
    return result
