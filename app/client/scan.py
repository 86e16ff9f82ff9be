"""Storage analysis of a plain OCI registry, computed by the client from the
manifests it scanned: shared layers, exclusive bytes per image, the delete impact
of a selection (the arithmetic is :mod:`app.core.storage`, shared with the Berth
registry).

An *image* here is an OCI repository name (``team/app``); a registry's storage
holds manifests as blobs too, so every figure counts manifest bytes alongside
configs and layers, as the registry's disk does.

What a plain registry's API cannot tell is said so, not guessed: bytes held but
no longer referenced (pending GC) are unknown (``None``), and so is the total
stored, since the Distribution API cannot list blobs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.client.errors import ClientError
from app.client.oci import OciClient
from app.client.oci_details import DetailsLoader, ManifestDetails
from app.core.storage import DeleteImpact, SharedLayer, delete_impact, summarize

TagKey = tuple[str, str]  # (repository, tag)

PENDING_GC_UNKNOWN = (
    "Unknown for this registry: its API cannot list the blobs it holds, so Berth "
    "cannot see bytes that nothing references any more. Deleted content is freed "
    "only when the registry's own garbage collector runs (CNCF Distribution: "
    "`registry garbage-collect <config.yml>` with the registry stopped or read-only)."
)


@dataclass(frozen=True, slots=True)
class ScanProgress:
    repositories_done: int
    repositories_total: int
    tags_done: int
    tags_total: int  # tags found so far (grows while repositories are listed)
    requests: int


@dataclass(frozen=True, slots=True)
class ImageUsage:
    exclusive: int  # bytes only this image reaches: freed (after GC) if it goes
    shared: int  # bytes it reaches that other images reach too


@dataclass(frozen=True, slots=True)
class PlainStorage:
    """Storage figures for a plain registry. ``stored`` and ``pending`` are None:
    unknown, never 0 (see :data:`PENDING_GC_UNKNOWN`)."""

    referenced: int  # distinct bytes reachable from tags
    shared: int  # bytes reachable from two or more images
    logical: int  # as if every image stored its own copy
    images: dict[str, ImageUsage]
    shared_layers: tuple[SharedLayer, ...]
    stored: int | None = None
    pending: int | None = None
    pending_explanation: str = PENDING_GC_UNKNOWN

    @property
    def sharing_saving(self) -> int:
        return self.logical - self.referenced


@dataclass(frozen=True, slots=True)
class TagDeletePlan:
    """What deleting one tag involves, for the confirmation dialog."""

    repository: str
    tag: str
    digest: str
    other_tags: tuple[str, ...]  # in the same repository, on the same digest
    # "placeholder" keeps the other tags; "digest" when no other tag needs keeping.
    recommended: Literal["placeholder", "digest"]


@dataclass
class RegistryScan:
    repositories: list[str]
    tags: dict[TagKey, str] = field(default_factory=dict)  # → manifest digest
    manifests: dict[str, ManifestDetails] = field(default_factory=dict)
    errors: dict[str, ClientError] = field(default_factory=dict)  # "repo" or "repo:tag"

    # --- the reference graph ------------------------------------------------------
    def blob_sizes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for details in self.manifests.values():
            out.update(details.blob_sizes())
        return out

    def tag_blobs(self) -> dict[TagKey, frozenset[str]]:
        memo: dict[str, frozenset[str]] = {}
        out: dict[TagKey, frozenset[str]] = {}
        for key, digest in self.tags.items():
            if digest not in memo:
                memo[digest] = frozenset(self.manifests[digest].blob_sizes())
            out[key] = memo[digest]
        return out

    def image_blobs(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {r: set() for r in self.repositories}
        for (repository, _tag), blobs in self.tag_blobs().items():
            out.setdefault(repository, set()).update(blobs)
        return out

    # --- figures ------------------------------------------------------------------
    def storage(self) -> PlainStorage:
        images: dict[Hashable, set[str]] = {k: v for k, v in self.image_blobs().items()}
        summary = summarize(self.blob_sizes(), images, {i: i for i in images})
        usage = {
            str(image): ImageUsage(u.exclusive, u.shared)
            for image, u in summary.repositories.items()
        }
        return PlainStorage(
            referenced=summary.referenced,
            shared=summary.shared,
            logical=summary.logical,
            images=usage,
            shared_layers=summary.shared_layers,
        )

    def delete_impact(
        self, tags: Iterable[TagKey] = (), images: Iterable[str] = ()
    ) -> DeleteImpact:
        """Bytes freed after the registry's GC, and kept because others share them,
        if ``tags`` and every tag of ``images`` go."""
        gone = set(tags)
        doomed = set(images)
        gone |= {key for key in self.tags if key[0] in doomed}
        tag_blobs: dict[Hashable, frozenset[str]] = {k: v for k, v in self.tag_blobs().items()}
        return delete_impact(self.blob_sizes(), tag_blobs, gone)

    # --- what a delete involves ---------------------------------------------------
    def tags_on(self, repository: str, digest: str) -> list[str]:
        return sorted(t for (r, t), d in self.tags.items() if r == repository and d == digest)

    def other_tags(self, repository: str, tag: str) -> list[str]:
        digest = self.tags[(repository, tag)]
        return [t for t in self.tags_on(repository, digest) if t != tag]

    def plan_tag_delete(self, repository: str, tag: str) -> TagDeletePlan:
        others = tuple(self.other_tags(repository, tag))
        return TagDeletePlan(
            repository,
            tag,
            self.tags[(repository, tag)],
            others,
            "placeholder" if others else "digest",
        )

    def digest_deletion(self, repository: str, digest: str) -> list[str]:
        """Digests to delete so ``digest`` goes with everything only it reaches in
        ``repository``: itself, then its children that no remaining tag needs (a
        registry keeps an index's children as manifests of their own)."""
        keep: set[str] = set()
        for (r, _t), d in self.tags.items():
            if r == repository and d != digest:
                keep.update(self.manifests[d].manifest_digests())
        return [d for d in self.manifests[digest].manifest_digests() if d not in keep]

    def image_digests(self, repository: str) -> list[str]:
        """Every manifest of ``repository`` reachable from its tags, parents first."""
        out: list[str] = []
        for digest in sorted({d for (r, _t), d in self.tags.items() if r == repository}):
            out.extend(d for d in self.manifests[digest].manifest_digests() if d not in out)
        return out


async def scan_registry(
    client: OciClient,
    repositories: Collection[str] | None = None,
    *,
    loader: DetailsLoader | None = None,
    progress: Callable[[ScanProgress], None] | None = None,
) -> RegistryScan:
    """Read every tag's manifest (and configs, and index children) of
    ``repositories`` (default: the whole catalog). Requests run concurrently,
    bounded by the client's semaphore; ``loader`` shares the session's cache.
    Cancel the task to stop; nothing is left running."""
    loader = loader or DetailsLoader(client)
    names: Sequence[str] = (
        sorted(repositories) if repositories is not None else await client.all_repositories()
    )
    scan = RegistryScan(list(names))
    listed = 0
    tags_total = 0
    tags_done = 0

    def report() -> None:
        if progress is not None:
            progress(ScanProgress(listed, len(names), tags_done, tags_total, client.requests))

    async def list_one(name: str) -> list[TagKey]:
        nonlocal listed, tags_total
        try:
            found = await client.all_tags(name)
        except ClientError as exc:
            scan.errors[name] = exc
            found = []
        listed += 1
        tags_total += len(found)
        report()
        return [(name, t) for t in found]

    lists = await asyncio.gather(*(list_one(n) for n in names))
    keys = [key for chunk in lists for key in chunk]
    # Closed with the loop, also when it ends by an error: the workers stop then,
    # not when the collector finds the generator.
    async with contextlib.aclosing(loader.iter_many(keys)) as rows:
        async for row in rows:
            tags_done += 1
            if row.details is None:
                assert row.error is not None
                scan.errors[f"{row.repository}:{row.tag}"] = row.error
            else:
                scan.tags[(row.repository, row.tag)] = row.details.digest
                scan.manifests[row.details.digest] = row.details
            report()
    return scan
