"""Deleting on a plain OCI registry: which requests a confirmed delete becomes (the
plan, worked out from every tag's current digest), and running them step by step
with progress and cancel. No Qt here.

A *step* is what one tag, or one manifest, needs:

* ``tag``: the OCI tag delete, where the registry supports it (Berth, zot, …);
* ``placeholder``: the safe path where the registry deletes only by digest
  (CNCF Distribution 2.8) and tags that stay share the tag's digest (see
  :func:`app.client.oci_delete.delete_tag_with_placeholder`);
* ``digest``: delete a manifest by digest, and with it every tag naming it, then
  the index children that nothing staying needs.

Where the registry deletes only by digest and a selected tag shares its digest
with tags that are not selected, there are two honest ways: keep those tags
(placeholder, the default) or delete them too (digest). Both are planned and the
admin picks one in the confirmation. A digest whose every tag is selected is
deleted by digest either way: a placeholder would leave its manifest untagged,
which Distribution's GC keeps (without ``--delete-untagged``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from app.client.berth_api import Image, TagDeleteResult
from app.client.errors import ClientError
from app.client.oci_details import ManifestDetails
from app.ui.backends.deletion import BulkDelete, BulkOutcome
from app.ui.backends.protocol import Backend

TAG: Final = "tag"
PLACEHOLDER: Final = "placeholder"
DIGEST: Final = "digest"


@dataclass(frozen=True, slots=True)
class DeleteStep:
    how: Literal["tag", "placeholder", "digest"]
    repository: str
    digest: str  # what the step's tags named when the admin confirmed
    tags: tuple[str, ...]  # the tags this step removes
    children: tuple[str, ...] = ()  # "digest": index children to delete after it


@dataclass(frozen=True, slots=True)
class TagDeletion:
    """The ways to delete the selected tags (method → steps) and, per way, the tags
    it deletes besides the selection."""

    repository: str
    selected: tuple[str, ...]
    ways: dict[str, tuple[DeleteStep, ...]]
    also_deleted: dict[str, tuple[str, ...]]

    @property
    def choice(self) -> bool:
        return len(self.ways) > 1

    def tags_going(self, way: str) -> list[str]:
        return [*self.selected, *self.also_deleted[way]]


def tags_by_digest(digests: Mapping[str, str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for tag, digest in digests.items():
        out.setdefault(digest, set()).add(tag)
    return out


def digest_steps(
    repository: str,
    going: Sequence[str],
    digests: Mapping[str, str],
    manifests: Mapping[str, ManifestDetails],
) -> tuple[DeleteStep, ...]:
    """One step per manifest in ``going`` (indexes first), each followed by the
    index children that no staying tag reaches. A child that a later step's
    index also holds is deleted with that later step, so a cancel between steps
    never leaves a remaining index without its child."""
    on = tags_by_digest(digests)
    staying = set(on) - set(going)
    keep = {d for s in staying for d in manifests[s].manifest_digests()}
    ordered = sorted(dict.fromkeys(going), key=lambda d: (not manifests[d].is_index, d))
    steps: list[DeleteStep] = []
    deleted: set[str] = set(ordered)  # top-level manifests have their own step
    for i, digest in enumerate(ordered):
        later = {c for d in ordered[i + 1 :] for c in manifests[d].manifest_digests()[1:]}
        children = [
            c
            for c in manifests[digest].manifest_digests()[1:]
            if c not in keep and c not in deleted and c not in later
        ]
        deleted.update(children)
        steps.append(
            DeleteStep(
                DIGEST, repository, digest, tuple(sorted(on.get(digest, ()))), tuple(children)
            )
        )
    return tuple(steps)


def plan_tag_delete(
    repository: str,
    selected: Iterable[str],
    digests: Mapping[str, str],
    manifests: Mapping[str, ManifestDetails],
    *,
    tag_delete: bool | None,
) -> TagDeletion:
    """The ways to delete ``selected``, given every tag of the repository and the
    digest it names now. ``tag_delete`` is the registry's capability (None: not
    known, so the standard OCI tag delete is tried)."""
    chosen = tuple(dict.fromkeys(selected))
    if tag_delete is not False:
        steps = tuple(DeleteStep(TAG, repository, digests[t], (t,)) for t in chosen)
        return TagDeletion(repository, chosen, {TAG: steps}, {TAG: ()})
    on = tags_by_digest(digests)
    picked = set(chosen)
    whole: list[str] = []
    partial: list[str] = []
    for digest in dict.fromkeys(digests[t] for t in chosen):
        (whole if on[digest] <= picked else partial).append(digest)
    ways: dict[str, tuple[DeleteStep, ...]] = {}
    also: dict[str, tuple[str, ...]] = {}
    if partial:
        shared = set(partial)
        ways[PLACEHOLDER] = digest_steps(repository, whole, digests, manifests) + tuple(
            DeleteStep(PLACEHOLDER, repository, digests[t], (t,))
            for t in chosen
            if digests[t] in shared
        )
        also[PLACEHOLDER] = ()
    ways[DIGEST] = digest_steps(repository, [*whole, *partial], digests, manifests)
    also[DIGEST] = tuple(sorted(t for d in partial for t in on[d] - picked))
    return TagDeletion(repository, chosen, ways, also)


StepRunner = Callable[[DeleteStep], Awaitable[list[TagDeleteResult]]]


class StepsDelete(BulkDelete):
    """Runs the steps of a confirmed delete in order. Cancel takes effect between
    steps; a failure that concerns every step (deletes turned off, the login
    gone) stops the run, and what was not done is reported with the reason."""

    def __init__(
        self,
        backend: Backend,
        run_step: StepRunner,
        image: Image,
        steps: Sequence[DeleteStep],
        *,
        on_progress: Callable[[int, int], None] = lambda _d, _t: None,
        on_chunk: Callable[[list[str]], None] = lambda _names: None,
    ) -> None:
        super().__init__(
            backend,
            image,
            [t for step in steps for t in step.tags],
            chunk=1,
            on_progress=on_progress,
            on_chunk=on_chunk,
        )
        self.steps = list(steps)
        self.run_step = run_step

    async def run(self) -> BulkOutcome:
        outcome = self.outcome
        done = 0
        for i, step in enumerate(self.steps):
            rest = [t for s in self.steps[i:] for t in s.tags]
            if self._cancel:
                outcome.cancelled = True
                outcome.failed.extend((t, "cancelled before it was sent") for t in rest)
                break
            try:
                results = await self.run_step(step)
            except ClientError as exc:
                outcome.stopped_by = exc
                outcome.failed.extend((t, exc.message) for t in rest)
                break
            done += len(step.tags)
            await self._record(step.tags, results, done)
        return outcome
