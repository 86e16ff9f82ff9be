"""Any OCI registry (CNCF Distribution, zot, Harbor, cloud registries, Berth's own
``/v2/``) as a :class:`~app.ui.backends.protocol.Backend`: the "oci" connection kind.

A plain registry has no workspaces, projects, permissions or storage API, so:

* the tree is the path segments of its repository names (a
  :class:`~app.ui.backends.protocol.NamespaceTree`), from ``_catalog`` plus the names the
  admin added by hand (``profile.repositories``, for a catalog that is off);
* a catalog name whose tag list came back empty is left out (tree counts, images):
  Distribution keeps listing a repository after all its manifests were deleted, and
  the OCI API has nothing to show or delete in it; names added by hand always stay;
* an *image* is one repository name (``team/app``); its id is a hash of the name;
* rows come back at once and are completed afterwards (tag counts, manifest
  details) by :meth:`OciBackend.fill_images` / :meth:`OciBackend.fill_tags`, which
  the window runs as rows arrive: tables fill in without waiting for every request;
* figures that need the whole registry (exclusive bytes, layer sharing, what a
  delete frees) come from the last storage scan (:meth:`OciBackend.scan_storage`);
  before one they are :data:`UNKNOWN` (-1), never a made-up 0;
* capabilities (catalog, deletes, tag delete, referrers) are detected once per
  connection and their notes shown, not discovered through errors;
* the registry decides what this account may do: every image is offered with
  admin rights and a refusal comes back as the registry's 403.

No Qt here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import httpx

from app.client import capabilities as caps
from app.client.berth_api import (
    ChildManifest,
    DeleteImpact,
    Image,
    Layer,
    ManifestDetail,
    Page,
    Project,
    Repository,
    Tag,
    TagDeleteResult,
    Workspace,
)
from app.client.errors import (
    AuthenticationFailed,
    ClientError,
    Conflict,
    NotFound,
    PermissionDenied,
    ServerError,
    Unsupported,
)
from app.client.oci import DEFAULT_CONCURRENCY, OciClient
from app.client.oci_delete import delete_digest, delete_tag, delete_tag_with_placeholder
from app.client.oci_details import DetailsLoader, ManifestDetails, TagDetails
from app.client.profiles import Profile
from app.client.scan import PlainStorage, RegistryScan, ScanProgress, scan_registry
from app.core import storage as storage_math
from app.core.permissions import Permission
from app.core.units import counted
from app.ui.backends import protocol as backend
from app.ui.backends.oci_deletion import (
    DIGEST,
    PLACEHOLDER,
    TAG,
    DeleteStep,
    TagDeletion,
    digest_steps,
    plan_tag_delete,
)
from app.ui.backends.oci_tree import NameTree, image_id, parent_path
from app.ui.backends.protocol import Capabilities, Identity, Namespace, Scope

UNKNOWN = -1  # a size or count not measured yet
OTHER_TAGS_SHOWN = 20

DELETES_OFF = (
    "Deleting is turned off on this registry (CNCF Distribution: storage.delete.enabled "
    "is false), so nothing can be deleted through it."
)
NO_SCAN = "scan the registry's storage first (Storage tab) to see what this frees"


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    # Go writes up to nine fractional digits; datetime takes six.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    # A config's time without a zone is read as UTC (times must compare with each other).
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _impact(impact: storage_math.DeleteImpact) -> DeleteImpact:
    return DeleteImpact(impact.freed, impact.kept, impact.freed_blobs, impact.kept_blobs)


class TagIndex:
    """Which digest each tag of one repository named when last read, both ways."""

    def __init__(self) -> None:
        self.digest_of: dict[str, str] = {}
        self.on: dict[str, set[str]] = {}

    def record(self, tag: str, digest: str) -> str | None:
        """Record ``tag`` → ``digest``; returns the digest it named before."""
        before = self.digest_of.get(tag)
        if before == digest:
            return before
        if before is not None:
            self.on[before].discard(tag)
        self.digest_of[tag] = digest
        self.on.setdefault(digest, set()).add(tag)
        return before

    def forget(self, tags: Iterable[str]) -> None:
        for tag in tags:
            digest = self.digest_of.pop(tag, None)
            if digest is not None:
                self.on[digest].discard(tag)

    def keep_only(self, tags: Iterable[str]) -> None:
        present = set(tags)
        self.forget([t for t in self.digest_of if t not in present])

    def tags_on(self, digest: str) -> set[str]:
        return set(self.on.get(digest, ()))


@dataclass
class TagFill:
    """One batch of tag rows completed by :meth:`OciBackend.fill_tags`."""

    rows: list[Tag] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # deleted meanwhile
    errors: list[tuple[str, ClientError]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PreparedTagDelete:
    """A tag delete ready to confirm: the selected tags as they are now, the ways
    to delete them, and what each way frees (from the last scan, if any)."""

    tags: tuple[Tag, ...]
    gone: tuple[str, ...]  # selected but no longer in the registry
    deletion: TagDeletion
    impacts: dict[str, DeleteImpact | None]


@dataclass(frozen=True, slots=True)
class PreparedImageDelete:
    image: Image  # with its current tag count
    steps: tuple[DeleteStep, ...]
    impact: DeleteImpact | None


class ScanResult:
    """The last storage scan, kept current as deletes made here remove tags (what
    others push or delete meanwhile shows only in the next scan)."""

    def __init__(self, scan: RegistryScan, at: dt.datetime) -> None:
        self.scan = scan
        self.at = at
        self._storage: PlainStorage | None = None
        self._layer_images: dict[str, int] | None = None
        self.referenced_at_scan = self.storage.referenced

    @property
    def storage(self) -> PlainStorage:
        if self._storage is None:
            self._storage = self.scan.storage()
        return self._storage

    @property
    def layer_images(self) -> dict[str, int]:
        """Blob → how many images reach it."""
        if self._layer_images is None:
            users: dict[str, int] = {}
            for blobs in self.scan.image_blobs().values():
                for digest in blobs:
                    users[digest] = users.get(digest, 0) + 1
            self._layer_images = users
        return self._layer_images

    @property
    def unreferenced_since(self) -> int:
        """Bytes that deletes made here left unreferenced since the scan: what the
        registry's GC will free of them."""
        return self.referenced_at_scan - self.storage.referenced

    def remove_tags(self, repository: str, tags: Iterable[str]) -> None:
        for tag in tags:
            self.scan.tags.pop((repository, tag), None)
        self._storage = None
        self._layer_images = None


class OciBackend:
    # One request per tag: the OCI API has no bulk delete.
    bulk_chunk = 1

    def __init__(
        self,
        profile: Profile,
        secret: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.profile = profile
        self.capabilities = Capabilities(
            projects=False, delete_impact=True, storage=False, server_sort=("name",)
        )
        self.client = OciClient.connect(
            profile.connection(),
            profile.username or None,
            secret,
            concurrency=concurrency,
            transport=transport,
        )
        self.loader = DetailsLoader(self.client)
        self.found: caps.Capabilities | None = None
        self.catalog: list[str] = []
        self.tree = NameTree(self.registry, profile.repositories)
        self.last_scan: ScanResult | None = None
        self._tags: dict[str, list[str]] = {}  # repository → its tags, as last listed
        self.empty: set[str] = set()  # catalog names whose tag list was last empty
        self._index: dict[str, TagIndex] = {}

    @property
    def registry(self) -> str:
        return self.profile.host

    # --- connecting and capabilities ------------------------------------------------
    async def identity(self) -> Identity:
        await self.client.ping()
        return Identity(self.profile.username or "anonymous")

    async def workspaces(self) -> list[Workspace]:
        """The registry as the one top-level item; (re)reads the catalog."""
        try:
            self.catalog = await self.client.all_repositories()
        except (PermissionDenied, NotFound, Unsupported):
            self.catalog = []  # off or hidden: the capability note says so
        self._build_tree()
        await self.detect_capabilities()
        return [
            Workspace(
                slug=self.registry,
                name=self.profile.name,
                role="",
                project_count=0,
                repository_count=len(self.tree.children("")),
                image_count=len(self.tree),
            )
        ]

    async def detect_capabilities(self) -> caps.Capabilities:
        """Once per connection (again only when the first detection knew no
        repository to probe and one is known now)."""
        first = self.tree.names[0] if self.tree.names else None
        return self._apply(await caps.capabilities(self.client, first))

    def _apply(self, found: caps.Capabilities) -> caps.Capabilities:
        self.found = found
        self.capabilities = replace(
            self.capabilities,
            notes=found.notes,
            delete_blocked=DELETES_OFF if found.deletes is False else None,
        )
        return found

    def set_repositories(self, names: Sequence[str]) -> None:
        """Replace the names added by hand (the admin edited the list)."""
        self.profile = replace(self.profile, repositories=tuple(dict.fromkeys(names)))
        self._build_tree()

    def _build_tree(self) -> None:
        shown = [n for n in self.catalog if n not in self.empty]
        self.tree = NameTree(self.registry, [*shown, *self.profile.repositories])

    def listed(self, name: str, tags: list[str]) -> None:
        """Record ``name``'s tag list as just read (or emptied by a delete here)."""
        self._tags[name] = tags
        was_empty = name in self.empty
        if tags:
            self.empty.discard(name)
        else:
            self.empty.add(name)
        if was_empty != (not tags):
            self._build_tree()

    def hidden(self, name: str) -> bool:
        """``name`` is left out of the tree and the images table (see the module)."""
        return name in self.empty and name not in self.profile.repositories

    # --- the tree -------------------------------------------------------------------
    async def namespaces(self, scope: Scope | None) -> list[Namespace]:
        if scope is None:
            return [self.tree.namespace("")]
        return self.tree.children(scope.repository or "")

    async def projects(self, ws: str) -> list[Project]:
        return []  # a plain registry has none: the tree is namespaces

    async def repositories(self, ws: str, project: str | None = None) -> list[Repository]:
        return []

    # --- images -----------------------------------------------------------------------
    def image_row(self, name: str) -> Image:
        """The row for ``name`` from what is known now (no request)."""
        tags = self._tags.get(name)
        usage = self.last_scan.storage.images.get(name) if self.last_scan else None
        return Image(
            id=image_id(name),
            name=name,
            full_name=name,
            repository=parent_path(name),
            project="",
            tag_count=len(tags) if tags is not None else UNKNOWN,
            size=usage.exclusive + usage.shared if usage else UNKNOWN,
            exclusive_size=usage.exclusive if usage else UNKNOWN,
            last_push=None,  # the Distribution API does not say
            workspace=self.registry,
            permission=Permission.ADMIN,
        )

    async def images(
        self, scope: Scope, *, sort: str | None, q: str | None, limit: int, cursor: str | None
    ) -> Page[Image]:
        names = self.tree.under(scope.repository or "")
        if q:
            needle = q.lower()
            names = [n for n in names if needle in n]
        rows = [self.image_row(n) for n in names]
        field_ = (sort or "name").lstrip("-")
        if field_ in ("tag_count", "size"):
            rows.sort(key=lambda i: (getattr(i, field_), i.name))
        if sort and sort.startswith("-"):
            rows.reverse()
        start = int(cursor or 0)
        end = start + limit
        return Page(rows[start:end], str(end) if end < len(rows) else None, len(rows))

    async def image(self, image: Image) -> Image:
        return self.image_row(image.full_name)

    async def fill_images(
        self, images: Sequence[Image]
    ) -> AsyncGenerator[tuple[Image, ClientError | None], None]:
        """Each image again with its tag count, as the tag lists arrive."""

        async def count(name: str) -> tuple[Image, ClientError | None]:
            try:
                self.listed(name, await self.client.all_tags(name))
            except NotFound:
                self.listed(name, [])  # NAME_UNKNOWN: nothing tagged in it either
            except ClientError as exc:
                return self.image_row(name), exc
            return self.image_row(name), None

        tasks = [asyncio.ensure_future(count(i.full_name)) for i in images]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ClientError):
                    await task

    # --- tags -------------------------------------------------------------------------
    def index(self, repository: str) -> TagIndex:
        return self._index.setdefault(repository, TagIndex())

    def tag_row(self, repository: str, tag: str) -> Tag:
        index = self.index(repository)
        digest = index.digest_of.get(tag)
        details = self.loader.cached(digest) if digest else None
        if digest is None or details is None:
            return Tag(tag, "", "", UNKNOWN, (), None, None, (), 0)
        others = sorted(index.tags_on(digest) - {tag})
        return Tag(
            name=tag,
            digest=digest,
            media_type=details.media_type,
            size=details.size,
            platforms=details.platforms,
            created=_time(details.created),
            pushed_at=None,  # the Distribution API does not say
            other_tags=tuple(others[:OTHER_TAGS_SHOWN]),
            other_tag_count=len(others),
        )

    async def tags(
        self, image: Image, *, sort: str | None, q: str | None, limit: int, cursor: str | None
    ) -> Page[Tag]:
        name = image.full_name
        if cursor is None or name not in self._tags:
            # A new listing (first page, F5, another sort or filter): ask again.
            listed = await self.client.all_tags(name)
            self.listed(name, listed)
            self.index(name).keep_only(listed)
        names = sorted(self._tags[name])
        if q:
            needle = q.lower()
            names = [n for n in names if needle in n.lower()]
        if sort == "-name":
            names.reverse()
        start = int(cursor or 0)
        end = start + limit
        rows = [self.tag_row(name, t) for t in names[start:end]]
        return Page(rows, str(end) if end < len(names) else None, len(names))

    def _resolved(self, row: TagDetails) -> set[str]:
        """Record a tag's digest; the tags whose rows change with it."""
        assert row.details is not None
        index = self.index(row.repository)
        before = index.record(row.tag, row.details.digest)
        changed = {row.tag} | index.tags_on(row.details.digest)
        if before is not None and before != row.details.digest:
            changed |= index.tags_on(before)
        return changed

    async def fill_tags(
        self, image: Image, names: Sequence[str], *, batch_s: float = 0.05
    ) -> AsyncGenerator[TagFill, None]:
        """The rows of ``names`` completed with their manifest details, in batches
        (at most one per ``batch_s``) as the details arrive. A tag's row changes
        other rows too: the tags sharing its digest list it."""
        repository = image.full_name
        loop = asyncio.get_running_loop()
        changed: set[str] = set()
        batch = TagFill()
        last = loop.time()
        # Closed at a yield (its consumer moved on), this closes the loader too,
        # which cancels its workers.
        async with contextlib.aclosing(self.loader.iter_tags(repository, names)) as rows:
            async for row in rows:
                if row.details is not None:
                    changed |= self._resolved(row)
                elif isinstance(row.error, NotFound):
                    self.index(repository).forget([row.tag])
                    batch.gone.append(row.tag)
                elif row.error is not None:
                    batch.errors.append((row.tag, row.error))
                if loop.time() - last >= batch_s:
                    batch.rows = [self.tag_row(repository, t) for t in sorted(changed)]
                    yield batch
                    changed, batch, last = set(), TagFill(), loop.time()
        batch.rows = [self.tag_row(repository, t) for t in sorted(changed)]
        if batch.rows or batch.gone or batch.errors:
            yield batch

    async def manifest(self, image: Image, digest: str) -> ManifestDetail:
        details = await self.loader.digest(image.full_name, digest)
        index = self.index(image.full_name)

        users = self.last_scan.layer_images if self.last_scan else {}

        def blob(digest: str, media_type: str, size: int) -> Layer:
            return Layer(digest, media_type, size, users.get(digest, UNKNOWN))

        return ManifestDetail(
            digest=details.digest,
            media_type=details.media_type,
            artifact_type=details.artifact_type,
            size=details.size,  # like Berth's: the manifest with all it reaches
            tags=tuple(sorted(index.tags_on(details.digest))),
            created=_time(details.created),
            platforms=details.platforms,
            config=blob(details.config.digest, details.config.media_type, details.config.size)
            if details.config
            else None,
            layers=tuple(blob(x.digest, x.media_type, x.size) for x in details.layers),
            manifests=tuple(
                ChildManifest(c.digest, c.media_type, c.platforms[0] if c.platforms else "", c.size)
                for c in details.children
            ),
            subject=details.subject,
            referrers=(),
        )

    def pull_reference(
        self, image: Image, tag: str | None = None, digest: str | None = None
    ) -> str:
        ref = f"{self.registry}/{image.full_name}"
        if digest:
            return f"{ref}@{digest}"
        return f"{ref}:{tag}" if tag else ref

    # --- storage ----------------------------------------------------------------------
    async def scan_storage(
        self, progress: Callable[[ScanProgress], None] | None = None
    ) -> ScanResult:
        """Read every manifest reachable from a tag (sharing the session's cache)
        and compute the storage figures from them. Cancel the task to stop."""
        scan = await scan_registry(
            self.client, self.tree.names, loader=self.loader, progress=progress
        )
        for (repository, tag), digest in scan.tags.items():
            self.index(repository).record(tag, digest)
        self.last_scan = ScanResult(scan, dt.datetime.now(dt.UTC))
        return self.last_scan

    def _impact_of(
        self, tags: Iterable[tuple[str, str]] = (), images: Iterable[str] = ()
    ) -> DeleteImpact | None:
        if self.last_scan is None:
            return None
        scan = self.last_scan.scan
        known = [k for k in tags if k in scan.tags]
        return _impact(scan.delete_impact(tags=known, images=list(images)))

    async def delete_impact(
        self, ws: str, *, tags: Sequence[tuple[Image, str]] = (), images: Sequence[Image] = ()
    ) -> DeleteImpact | None:
        return self._impact_of([(i.full_name, t) for i, t in tags], [i.full_name for i in images])

    # --- deleting -----------------------------------------------------------------------
    async def _current(self, repository: str) -> tuple[dict[str, str], dict[str, ManifestDetails]]:
        """Every tag of ``repository`` and the digest it names now (read again: a
        delete must not go by what the table showed a while ago)."""
        listed = await self.client.all_tags(repository)
        self.listed(repository, listed)
        index = self.index(repository)
        index.keep_only(listed)
        digests: dict[str, str] = {}
        manifests: dict[str, ManifestDetails] = {}
        failed: list[tuple[str, ClientError]] = []
        async with contextlib.aclosing(self.loader.iter_tags(repository, listed)) as rows:
            async for row in rows:
                if row.details is not None:
                    self._resolved(row)
                    digests[row.tag] = row.details.digest
                    manifests[row.details.digest] = row.details
                elif isinstance(row.error, NotFound):
                    index.forget([row.tag])  # deleted meanwhile
                elif row.error is not None:
                    failed.append((row.tag, row.error))
        if failed:
            tag, error = failed[0]
            # Without every tag's digest, a delete by digest could take a tag the
            # confirmation did not name: do nothing rather than guess.
            raise ClientError(
                f"Could not read {counted(len(failed), 'tag')} of {repository} (first, {tag}: "
                f"{error.message}); nothing was deleted."
            )
        return digests, manifests

    async def _tag_delete_capability(self, repository: str) -> bool | None:
        # Cached per connection; probed now only if no repository was known before.
        return self._apply(await caps.capabilities(self.client, repository)).tag_delete

    async def prepare_tag_delete(self, image: Image, names: Sequence[str]) -> PreparedTagDelete:
        repository = image.full_name
        tag_delete = await self._tag_delete_capability(repository)
        digests, manifests = await self._current(repository)
        present = [n for n in names if n in digests]
        deletion = plan_tag_delete(repository, present, digests, manifests, tag_delete=tag_delete)
        impacts = {
            way: self._impact_of([(repository, t) for t in deletion.tags_going(way)])
            for way in deletion.ways
        }
        return PreparedTagDelete(
            tuple(self.tag_row(repository, t) for t in present),
            tuple(n for n in names if n not in digests),
            deletion,
            impacts,
        )

    async def prepare_image_delete(self, image: Image) -> PreparedImageDelete:
        repository = image.full_name
        await self._tag_delete_capability(repository)
        digests, manifests = await self._current(repository)
        steps = digest_steps(repository, list(dict.fromkeys(digests.values())), digests, manifests)
        return PreparedImageDelete(
            replace(self.image_row(repository), tag_count=len(digests)),
            steps,
            self._impact_of(images=[repository]),
        )

    def _removed(self, repository: str, tags: Iterable[str]) -> None:
        gone = set(tags)
        self.index(repository).forget(gone)
        if repository in self._tags:
            self.listed(repository, [t for t in self._tags[repository] if t not in gone])
        if self.last_scan is not None:
            self.last_scan.remove_tags(repository, gone)

    async def run_step(self, step: DeleteStep) -> list[TagDeleteResult]:
        """One confirmed step. Failures about one tag come back as its result;
        failures that concern every step (deletes off, login gone, a refusal)
        are raised, which stops the run."""
        name = step.repository
        try:
            if step.how == "tag":
                await delete_tag(self.client, name, step.tags[0], expected_digest=step.digest)
            elif step.how == "placeholder":
                await delete_tag_with_placeholder(
                    self.client, name, step.tags[0], expected_digest=step.digest
                )
            else:
                return await self._delete_digest(step)
        except NotFound:
            self._removed(name, step.tags)
            return [TagDeleteResult(t, "not_found", "already gone") for t in step.tags]
        except Conflict as exc:
            return [TagDeleteResult(t, "error", exc.message) for t in step.tags]
        self._removed(name, step.tags)
        return [TagDeleteResult(t, "deleted", "") for t in step.tags]

    async def _delete_digest(self, step: DeleteStep) -> list[TagDeleteResult]:
        name = step.repository
        for tag in step.tags:
            current = await self.client.head_manifest(name, tag)
            if current.digest != step.digest:
                message = (
                    f"{name}:{tag} now names {current.digest}, not {step.digest} as when you "
                    "confirmed; that manifest was not deleted. Refresh and try again."
                )
                return [TagDeleteResult(t, "error", message) for t in step.tags]
        try:
            await delete_digest(self.client, name, step.digest)
        except NotFound:
            self._removed(name, step.tags)
            return [TagDeleteResult(t, "not_found", "already gone") for t in step.tags]
        self._removed(name, step.tags)
        results = [TagDeleteResult(t, "deleted", "") for t in step.tags]
        for child in step.children:
            try:
                await delete_digest(self.client, name, child)
            except NotFound:
                continue
            except (AuthenticationFailed, Unsupported):
                raise
            except ServerError as exc:
                results.append(TagDeleteResult(f"{name}@{child}", "error", exc.message))
        return results

    async def delete_tags(
        self, image: Image, tags: Sequence[str], expected: Mapping[str, str] | None = None
    ) -> list[TagDeleteResult]:
        """Delete exactly ``tags``, the safe way where there is a choice (other tags
        on their digests stay); the window confirms the plan before running it.
        The OCI API has no conditional delete, so ``expected`` cannot be promised:
        the plan resolves each tag's digest just before it deletes."""
        prepared = await self.prepare_tag_delete(image, tags)
        ways = prepared.deletion.ways
        steps = ways[next(w for w in (TAG, PLACEHOLDER, DIGEST) if w in ways)]
        results = [TagDeleteResult(t, "not_found", "already gone") for t in prepared.gone]
        for step in steps:
            results += await self.run_step(step)
        return results

    async def delete_image(self, image: Image) -> None:
        prepared = await self.prepare_image_delete(image)
        failed: list[TagDeleteResult] = []
        for step in prepared.steps:
            failed += [r for r in await self.run_step(step) if r.status == "error"]
        if failed:
            raise ClientError(
                f"Deleting {image.full_name}: {counted(len(failed), 'manifest')} not deleted "
                f"(first: {failed[0].message})"
            )
        self.listed(image.full_name, [])

    async def aclose(self) -> None:
        await self.client.aclose()


backend.register("oci", OciBackend)
