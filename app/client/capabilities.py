"""What a registry offers, detected once per connection so the UI can show it
(greyed actions, a notice) instead of discovering it through errors.

Detection never deletes anything. Catalog and referrers are plain reads. For
deletes there is no read that tells (registries advertise neither an ``Allow``
header nor their delete setting), so the probe is a DELETE of a tag that cannot
exist: a fresh random name (``berth-probe-<128 random bits>``). The answer tells
everything without touching content:

===========================  =================  ===================
answer to the probe          deletes enabled    tag delete
===========================  =================  ===================
404 with an OCI error code   yes                yes (it looked the tag up)
400 (Distribution 2.8)       yes                no, digests only
405 UNSUPPORTED              no (turned off)    unknown
401 / 403                    unknown: this account may not delete here
===========================  =================  ===================

The delete and referrers probes need a repository; when none is known (catalog
off, no names added yet) those answers stay None (unknown) and the UI may ask
again once the admin adds a name.
"""

from __future__ import annotations

import uuid
import weakref
from dataclasses import dataclass

from app.client.errors import (
    AuthenticationFailed,
    ClientError,
    NotFound,
    PermissionDenied,
    ServerError,
    Unsupported,
)
from app.client.oci import OciClient
from app.core.digests import Digest

# A subject no registry holds: the referrers API must still answer 200 for it.
_PROBE_SUBJECT = str(Digest.of(b"berth capability probe: no such manifest"))


@dataclass(frozen=True, slots=True)
class Capabilities:
    catalog: bool
    deletes: bool | None  # None: unknown
    tag_delete: bool | None
    referrers: bool | None
    probed_repository: str | None
    notes: tuple[str, ...] = ()  # sentences for the UI, one per limitation found


async def _catalog(client: OciClient) -> tuple[bool, list[str], str | None]:
    """(available, first repository names, note). Wrong credentials are not a
    capability: that AuthenticationFailed goes to the caller."""
    try:
        page = await client.catalog_page(1)
    except PermissionDenied:
        return (
            False,
            [],
            ("This account may not list the registry's catalog: add repository names by hand."),
        )
    except (NotFound, Unsupported):
        return (
            False,
            [],
            ("The registry's catalog is disabled or hidden: add repository names by hand."),
        )
    return True, page.items, None


async def _deletes(client: OciClient, repository: str) -> tuple[bool | None, bool | None, str]:
    probe = f"berth-probe-{uuid.uuid4().hex}"
    try:
        await client.delete_manifest(repository, probe)
    except NotFound as exc:
        if exc.code:
            return True, True, ""
        return None, None, "Could not tell whether the registry allows deletes."
    except Unsupported:
        return (
            False,
            None,
            "The registry has deletes turned off (CNCF Distribution: "
            "storage.delete.enabled is false): nothing can be deleted through it.",
        )
    except (PermissionDenied, AuthenticationFailed):
        return None, None, f"This account may not delete in {repository}."
    except ServerError as exc:
        if exc.status == 400:
            return (
                True,
                False,
                "The registry deletes only by digest, not by tag: deleting one tag "
                "of a digest that others share uses a placeholder manifest.",
            )
        return None, None, f"Could not tell whether the registry allows deletes ({exc.message})."
    # 202 for a tag that cannot exist: the registry says yes to anything.
    return True, True, ""


async def _referrers(client: OciClient, repository: str) -> tuple[bool | None, str]:
    try:
        found = await client.referrers(repository, _PROBE_SUBJECT)
    except ClientError:
        return None, ""
    if found is None:
        return False, "The registry has no referrers API (signatures, SBOMs are not listed)."
    return True, ""


async def detect(client: OciClient, repository: str | None = None) -> Capabilities:
    """Probe the registry (see the module docstring for why it is safe)."""
    catalog, first, note = await _catalog(client)
    notes = [note] if note else []
    deletes: bool | None = None
    tag_delete: bool | None = None
    referrers: bool | None = None
    if repository is None and first:
        repository = first[0]
    if repository is not None:
        deletes, tag_delete, delete_note = await _deletes(client, repository)
        referrers, referrers_note = await _referrers(client, repository)
        notes += [n for n in (delete_note, referrers_note) if n]
    return Capabilities(catalog, deletes, tag_delete, referrers, repository, tuple(notes))


_detected: weakref.WeakKeyDictionary[OciClient, Capabilities] = weakref.WeakKeyDictionary()


async def capabilities(
    client: OciClient, repository: str | None = None, *, refresh: bool = False
) -> Capabilities:
    """The capabilities of ``client``'s registry, detected on first use and cached
    for the connection. Detected again when asked to ``refresh``, or when the
    first detection knew no repository and one is given now."""
    known = _detected.get(client)
    if (
        known is not None
        and not refresh
        and (known.probed_repository is not None or repository is None)
    ):
        return known
    found = await detect(client, repository)
    _detected[client] = found
    return found
