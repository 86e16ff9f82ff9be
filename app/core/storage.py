"""Storage arithmetic over a reference graph.

Given the blobs a registry holds and, for each image, the blobs reachable from its
tags, compute what admins ask about: stored, referenced, shared (reachable from two
or more images), pending GC (held but unreferenced), logical size (as if nothing
were shared), per-repository exclusive/shared bytes, and the impact of deleting a
set of tags. Both the registry (to check its SQL) and the client (for plain OCI
registries, from scanned manifests) use it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Set
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RepositoryUsage:
    exclusive: int
    shared: int


@dataclass(frozen=True, slots=True)
class SharedLayer:
    digest: str
    size: int
    images: tuple[Hashable, ...]


@dataclass(frozen=True, slots=True)
class StorageSummary:
    stored: int
    referenced: int
    shared: int
    pending: int
    logical: int
    repositories: dict[Hashable, RepositoryUsage] = field(default_factory=dict)
    shared_layers: tuple[SharedLayer, ...] = ()

    @property
    def sharing_saving(self) -> int:
        """Bytes that sharing saves against storing every image on its own."""
        return self.logical - self.referenced


@dataclass(frozen=True, slots=True)
class DeleteImpact:
    freed: int  # bytes that become unreferenced: freed once GC runs
    kept: int  # bytes of the deleted items that stay because others still use them
    freed_blobs: int
    kept_blobs: int


def summarize(
    blob_sizes: Mapping[str, int],
    image_blobs: Mapping[Hashable, Set[str]],
    image_repository: Mapping[Hashable, Hashable] | None = None,
) -> StorageSummary:
    """Figures for a registry holding ``blob_sizes``.

    ``image_blobs`` maps each image to the blobs reachable from its tags; blobs
    reachable from an image but not held (foreign layers) count as size 0.
    """
    users: dict[str, list[Hashable]] = defaultdict(list)
    for image, blobs in image_blobs.items():
        for digest in blobs:
            users[digest].append(image)
    stored = sum(blob_sizes.values())
    referenced = sum(blob_sizes.get(d, 0) for d in users)
    shared_digests = [d for d, imgs in users.items() if len(imgs) >= 2]
    shared = sum(blob_sizes.get(d, 0) for d in shared_digests)
    logical = sum(blob_sizes.get(d, 0) * len(imgs) for d, imgs in users.items())
    held_unreferenced = sum(size for d, size in blob_sizes.items() if d not in users)

    repositories: dict[Hashable, RepositoryUsage] = {}
    if image_repository is not None:
        exclusive_by: dict[Hashable, int] = defaultdict(int)
        shared_by: dict[Hashable, int] = defaultdict(int)
        for digest, imgs in users.items():
            size = blob_sizes.get(digest, 0)
            repos = {image_repository[i] for i in imgs}
            if len(imgs) == 1:
                exclusive_by[image_repository[imgs[0]]] += size
            else:
                for repo in repos:
                    shared_by[repo] += size
        for repo in set(exclusive_by) | set(shared_by) | set(image_repository.values()):
            repositories[repo] = RepositoryUsage(exclusive_by[repo], shared_by[repo])

    layers = tuple(
        sorted(
            (SharedLayer(d, blob_sizes.get(d, 0), tuple(users[d])) for d in shared_digests),
            key=lambda s: (-s.size, s.digest),
        )
    )
    return StorageSummary(
        stored=stored,
        referenced=referenced,
        shared=shared,
        pending=held_unreferenced,
        logical=logical,
        repositories=repositories,
        shared_layers=layers,
    )


def delete_impact(
    blob_sizes: Mapping[str, int],
    tag_blobs: Mapping[Hashable, Set[str]],
    deleting: Iterable[Hashable],
) -> DeleteImpact:
    """Bytes freed (after GC) and kept if the tags in ``deleting`` go.

    ``tag_blobs`` maps every tag in the registry to the blobs reachable from it.
    """
    gone = set(deleting)
    candidates: set[str] = set()
    for tag in gone:
        candidates |= tag_blobs.get(tag, set())
    still: set[str] = set()
    for tag, blobs in tag_blobs.items():
        if tag not in gone:
            still |= blobs & candidates
    freed = candidates - still
    return DeleteImpact(
        freed=sum(blob_sizes.get(d, 0) for d in freed),
        kept=sum(blob_sizes.get(d, 0) for d in still),
        freed_blobs=len(freed),
        kept_blobs=len(still),
    )
