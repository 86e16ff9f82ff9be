"""Deleting tags and images: what a delete will do (the plan), and running a bulk
tag delete in the background in chunks.

A bulk delete sends the tags in chunks through the backend's bulk call. Cancel
takes effect between chunks (a chunk in flight is never cut off halfway, so every
tag's outcome is known). A chunk that fails as a whole (the server went away, a
403) stops the run: its tags and the rest are reported as not deleted, with the
reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from app.client.berth_api import DeleteImpact, Image, StayingTags, Tag, TagDeleteResult
from app.client.errors import ClientError
from app.core.units import counted
from app.ui.backends.protocol import Backend


@dataclass(frozen=True, slots=True)
class DeleteMethod:
    """One way to delete the planned tags, where the registry leaves a choice (it
    deletes only by digest, and other tags share a digest): the admin picks one in
    the confirmation, the first is the default."""

    key: str  # "placeholder" | "digest"
    label: str
    explanation: str
    also_deleted: tuple[str, ...] = ()  # tags not selected that this way deletes too
    impact: DeleteImpact | None = None


@dataclass(frozen=True, slots=True)
class DeletePlan:
    image: Image
    tags: tuple[Tag, ...] = ()
    whole_image: bool = False
    methods: tuple[DeleteMethod, ...] = ()
    # Said after the storage figures (where they come from, what frees the bytes).
    storage_note: str = ""
    # False where the registry keeps no trash (a plain OCI registry): the delete is final
    # whatever an impact says. True: the server's trash retention decides.
    trash: bool = True

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tags]

    @property
    def digests(self) -> set[str]:
        return {t.digest for t in self.tags}

    def staying_tags(self, impact: DeleteImpact | None) -> list[StayingTags]:
        """Per digest of the deleted tags, the other tags on it that stay: counted by
        the server when its delete-impact answer says, else from the rows (each row's
        count of other tags on its digest is the server's whole count; only the names
        it carries are capped)."""
        if self.whole_image:
            return []
        if impact is not None and impact.staying is not None:
            return [s for s in impact.staying if s.count > 0]
        by_digest: dict[str, list[Tag]] = {}
        for tag in self.tags:
            by_digest.setdefault(tag.digest, []).append(tag)
        out = []
        for digest, tags in by_digest.items():
            on_digest = max(max(t.other_tag_count, len(t.other_tags)) for t in tags) + 1
            count = on_digest - len(tags)
            if count > 0:
                names = self.staying.get(digest, [])
                out.append(StayingTags(digest, count, tuple(names[:count])))
        return out

    @property
    def staying(self) -> dict[str, list[str]]:
        """Other tags on the deleted tags' digests that are not being deleted
        (digest → tag names): their manifests, and storage, stay."""
        if self.whole_image:
            return {}
        going = set(self.names)
        out: dict[str, list[str]] = {}
        for tag in self.tags:
            for other in tag.other_tags:
                if other not in going:
                    names = out.setdefault(tag.digest, [])
                    if other not in names:
                        names.append(other)
        return out


@dataclass(frozen=True, slots=True)
class Deleted:
    """What one confirmed delete of the window removed, for an undo."""

    image: Image
    tags: tuple[tuple[str, str], ...] = ()  # (name, digest) of each tag deleted
    whole_image: bool = False
    # False where the delete was final (the server said its trash is off, or it keeps
    # none); True: the trash may hold it (an undo looks there).
    restorable: bool = True


@dataclass
class BulkOutcome:
    requested: int
    deleted: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # not found: deleted meanwhile
    failed: list[tuple[str, str]] = field(default_factory=list)  # (tag, reason)
    cancelled: bool = False
    stopped_by: ClientError | None = None

    @property
    def removed(self) -> list[str]:
        """Tags no longer on the server (to take out of the table)."""
        return self.deleted + self.gone

    @property
    def summary(self) -> str:
        # "1 of 2 tags", "1 of 1 tag": the noun goes with the total.
        text = f"Deleted {len(self.deleted):,} of {counted(self.requested, 'tag')}"
        if self.gone:
            text += f"; {len(self.gone):,} {'was' if len(self.gone) == 1 else 'were'} already gone"
        if self.failed:
            text += f"; {len(self.failed):,} not deleted"
        if self.cancelled:
            text += " (cancelled)"
        return text + "."


class BulkDelete:
    """One background bulk delete. ``on_progress(done, total)`` and
    ``on_chunk(removed_names)`` are called after every chunk, on the event loop."""

    def __init__(
        self,
        backend: Backend,
        image: Image,
        tags: Sequence[str],
        *,
        chunk: int | None = None,
        on_progress: Callable[[int, int], None] = lambda _d, _t: None,
        on_chunk: Callable[[list[str]], None] = lambda _names: None,
        expected: Mapping[str, str] | None = None,
    ) -> None:
        self.backend = backend
        self.image = image
        self.tags = list(tags)
        # The digests the user saw: a tag pushed again since is left alone.
        self.expected = dict(expected or {})
        self.chunk = max(1, chunk or backend.bulk_chunk)
        self.on_progress = on_progress
        self.on_chunk = on_chunk
        self._cancel = False
        self.outcome = BulkOutcome(len(self.tags))

    def cancel(self) -> None:
        self._cancel = True

    @property
    def cancelling(self) -> bool:
        return self._cancel

    async def run(self) -> BulkOutcome:
        outcome = self.outcome
        done = 0
        for start in range(0, len(self.tags), self.chunk):
            if self._cancel:
                outcome.cancelled = True
                outcome.failed.extend(
                    (t, "cancelled before it was sent") for t in self.tags[start:]
                )
                break
            chunk = self.tags[start : start + self.chunk]
            try:
                results = await self.backend.delete_tags(
                    self.image, chunk, {t: self.expected[t] for t in chunk if t in self.expected}
                )
            except ClientError as exc:
                outcome.stopped_by = exc
                outcome.failed.extend((t, exc.message) for t in self.tags[start:])
                break
            done += len(chunk)
            await self._record(chunk, results, done)
        return outcome

    async def _record(
        self, chunk: Sequence[str], results: Sequence[TagDeleteResult], done: int
    ) -> None:
        """Account for one chunk's results, report them, let the window paint."""
        outcome = self.outcome
        removed: list[str] = []
        answered = set()
        for result in results:
            answered.add(result.tag)
            if result.status == "deleted":
                outcome.deleted.append(result.tag)
                removed.append(result.tag)
            elif result.status == "not_found":
                outcome.gone.append(result.tag)
                removed.append(result.tag)
            else:
                outcome.failed.append((result.tag, result.message or result.status))
        for tag in chunk:
            if tag not in answered:
                outcome.failed.append((tag, "the registry did not report on this tag"))
        self.on_chunk(removed)
        self.on_progress(done, len(self.tags))
        await asyncio.sleep(0)  # let the window paint between chunks
