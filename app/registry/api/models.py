"""Request and response bodies of the management API (they make its OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictBool

from app.core import names
from app.registry.api.times import IsoTime

PermissionName = Literal["none", "read", "write", "admin"]
RoleName = Literal["admin", "member", "guest"]
NonNegative = Annotated[int, Field(ge=0)]
# Row ids stay below 2**53: exact in every JSON parser (a larger number names nothing).
MAX_ID = 2**53 - 1


def _integral(value: Any) -> Any:
    # JSON has one number type: 7.0 is the integer 7, but "7", 7.5 and true are not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


RowId = Annotated[int, Field(ge=1, le=MAX_ID), Strict(), BeforeValidator(_integral)]


class Request(BaseModel):
    """A request body: exactly the documented fields, of exactly the documented types."""

    model_config = ConfigDict(strict=True, extra="forbid")


def grammar(regex: Any, max_length: int) -> Any:
    return Field(pattern=regex.pattern, min_length=1, max_length=max_length)


# who and where -------------------------------------------------------------------


class UserInfo(BaseModel):
    name: str
    superuser: bool


class WorkspaceRole(BaseModel):
    slug: str
    name: str
    role: RoleName


class Me(BaseModel):
    user: UserInfo
    workspaces: list[WorkspaceRole]


class Workspace(BaseModel):
    slug: str
    name: str
    role: RoleName
    project_count: NonNegative
    repository_count: NonNegative
    image_count: NonNegative


class Project(BaseModel):
    key: str
    name: str
    repository_count: NonNegative
    image_count: NonNegative


class RepositoryItem(BaseModel):
    id: int
    slug: str
    project: str
    image_count: NonNegative
    tag_count: NonNegative
    size: NonNegative
    permission: PermissionName


# images, tags, manifests ---------------------------------------------------------


class ImageItem(BaseModel):
    id: int
    name: str
    full_name: str
    etag: str = Field(
        description="the image's entity tag: deletes through this id send it as If-Match"
    )
    repository: str
    project: str
    tag_count: NonNegative
    size: NonNegative
    exclusive_size: NonNegative
    last_push: IsoTime | None


class ImageDetail(ImageItem):
    workspace: str
    permission: PermissionName


class TagItem(BaseModel):
    name: str
    digest: str
    media_type: str
    size: NonNegative
    platforms: list[str]
    created: IsoTime | None
    pushed_at: IsoTime
    other_tags: list[str] = Field(
        description="other tags of this image on the same digest (at most 20, sorted)"
    )
    other_tag_count: NonNegative = Field(description="how many other tags share the digest")
    last_pulled: IsoTime | None = Field(
        None, description="last pull (manifest GET/HEAD) by this tag's name since it was "
        "pushed on its digest; null: none seen"
    )  # fmt: skip
    digest_last_pulled: IsoTime | None = Field(
        None, description="last pull of its digest by any reference (this tag, another tag "
        "or the digest itself)"
    )  # fmt: skip


class TagExpected(Request):
    name: str
    digest: str = Field(description="the digest the caller saw the tag on")


class TagsDelete(Request):
    tags: list[str | TagExpected] = Field(
        min_length=1,
        max_length=1000,
        description="tag names, or {name, digest}: a tag that has moved to another "
        "digest since is left alone (status 'changed')",
    )


class TagResult(BaseModel):
    tag: str
    status: Literal["deleted", "not_found", "changed", "error"]
    message: str


class TagsDeleted(BaseModel):
    results: list[TagResult]
    deleted: NonNegative


class BlobRef(BaseModel):
    digest: str
    size: NonNegative


class LayerInfo(BaseModel):
    digest: str
    media_type: str
    size: NonNegative
    image_count: NonNegative


class ChildManifest(BaseModel):
    digest: str
    media_type: str
    platform: str | None
    size: NonNegative


class Referrer(BaseModel):
    digest: str
    artifact_type: str | None
    size: NonNegative


class ManifestDetail(BaseModel):
    digest: str
    media_type: str
    artifact_type: str | None
    size: NonNegative
    tags: list[str]
    created: IsoTime | None
    platforms: list[str]
    config: BlobRef | None
    layers: list[LayerInfo]
    manifests: list[ChildManifest]
    subject: str | None
    referrers: list[Referrer]


# storage, GC, audit --------------------------------------------------------------


class RepositoryStorage(BaseModel):
    slug: str
    project: str
    exclusive: NonNegative
    shared: NonNegative
    image_count: NonNegative
    in_trash: NonNegative = Field(
        0, description="bytes only its images' trash entries hold (restorable, then GC)"
    )


class Storage(BaseModel):
    stored: NonNegative
    referenced: NonNegative
    shared: NonNegative
    pending: NonNegative
    logical: NonNegative
    saving: int
    blob_count: NonNegative
    uploading: NonNegative = Field(
        description="bytes received by the workspace's open uploads (not blobs yet)"
    )
    upload_count: NonNegative = Field(description="open upload sessions")
    in_trash: NonNegative = Field(
        0,
        description="unreferenced bytes the trash holds for a restore; GC frees them once "
        "their entries expire or are emptied (not counted in pending)",
    )
    repositories: list[RepositoryStorage]


class ImageRef(BaseModel):
    id: int
    full_name: str


class SharedLayer(BaseModel):
    digest: str
    size: NonNegative
    image_count: NonNegative
    images: list[ImageRef] = Field(
        description="images you may read that reach the layer (at most 50)"
    )


class Sample(BaseModel):
    at: IsoTime
    stored: NonNegative
    referenced: NonNegative
    pending: NonNegative
    in_trash: NonNegative = 0


class GcRun(BaseModel):
    id: int
    triggers: list[str]
    started_at: IsoTime
    duration_ms: NonNegative
    manifests_deleted: NonNegative
    blobs_deleted: NonNegative
    bytes_freed: NonNegative


class History(BaseModel):
    samples: list[Sample]
    gc_runs: list[GcRun]


class TagRef(Request):
    image_id: RowId
    tag: str = Field(max_length=128)


class ImpactRequest(Request):
    tags: list[TagRef] = Field(default_factory=list, max_length=10_000)
    images: list[RowId] = Field(default_factory=list, max_length=1000)


class StayingTags(BaseModel):
    """Tags on a manifest some of whose tags are being deleted, that are not."""

    image_id: int
    digest: str
    count: NonNegative = Field(description="how many tags of the image on it stay (all)")
    tags: list[str] = Field(description="the first of them by name (at most 20)")


class Impact(BaseModel):
    freed: NonNegative
    kept: NonNegative
    freed_blobs: NonNegative
    kept_blobs: NonNegative
    tags: NonNegative = Field(
        0, description="tags the delete removes: the named ones that exist, and every tag of "
        "the named images"
    )  # fmt: skip
    staying: list[StayingTags] = Field(
        default_factory=list,
        description="per manifest of a deleted tag (not of a deleted image): the other tags "
        "of its image on it, which stay, and so does the manifest",
    )
    trash_retention_s: float = Field(
        0,
        description="the deleted tags and images are held this long for a restore, then "
        "freed by GC (0: no trash, freed by GC after its review delay)",
    )


class GcStatus(BaseModel):
    queued_manifests: NonNegative
    queued_blobs: NonNegative
    due_manifests: NonNegative
    due_blobs: NonNegative
    pending_bytes: NonNegative
    next_review_at: IsoTime | None
    review_delay_s: float
    upload_grace_s: float
    # How long a delete stays restorable (serve --trash-retention); 0: deletes are final.
    trash_retention_s: float
    recent_runs: list[GcRun]


class StorageOverview(BaseModel):
    """What the storage view shows, read at one moment: the figures beside the GC
    status and history they belong with (three requests could straddle a GC run)."""

    storage: Storage
    gc: GcStatus
    history: History


class AuditEntry(BaseModel):
    id: int
    at: IsoTime
    actor: str | None
    action: str
    target: str
    detail: Any = None


# administration ------------------------------------------------------------------


class NewUser(Request):
    name: Annotated[str, grammar(names.USERNAME_RE, 64)]
    password: str = Field(min_length=8, max_length=1024)
    superuser: StrictBool = False


class NewWorkspace(Request):
    slug: Annotated[str, grammar(names.SLUG_RE, 63)]
    name: str | None = Field(default=None, max_length=255)


class Membership(Request):
    admin: StrictBool = False


class Member(BaseModel):
    user: str
    admin: bool


class NewProject(Request):
    key: Annotated[str, grammar(names.PROJECT_KEY_RE, 32)]
    name: str | None = Field(default=None, max_length=255)


class NewRepository(Request):
    slug: Annotated[str, grammar(names.SLUG_RE, 63)]
    project: Annotated[str, grammar(names.PROJECT_KEY_RE, 32)]


class GrantChange(Request):
    permission: PermissionName


class Grant(BaseModel):
    user: str
    permission: PermissionName


# cleanup policies ----------------------------------------------------------------

RuleKindName = Literal[
    "keep_last", "keep_last_pulled", "keep_regex", "remove_older_than", "remove_not_pulled_for"
]


class PolicyRule(BaseModel):
    kind: RuleKindName
    value: int | str = Field(
        description="keep_last, keep_last_pulled: a count; keep_regex: a regular expression "
        "(Python syntax, matched anywhere in the tag name); remove_older_than, "
        "remove_not_pulled_for: days"
    )


class CountRule(Request):
    kind: Literal["keep_last", "keep_last_pulled"]
    value: Annotated[int, Field(ge=0, le=1_000_000), Strict(), BeforeValidator(_integral)]


class RegexRule(Request):
    kind: Literal["keep_regex"]
    value: str = Field(
        min_length=1,
        max_length=256,
        json_schema_extra={"format": "regex"},
        description="Python syntax, matched anywhere in the tag name; a group that "
        "repeats and holds a repetition or alternation is refused (exponential time)",
    )


class DaysRule(Request):
    kind: Literal["remove_older_than", "remove_not_pulled_for"]
    value: Annotated[int, Field(ge=0, le=36_500), Strict(), BeforeValidator(_integral)]


PolicyRuleIn = Annotated[CountRule | RegexRule | DaysRule, Field(discriminator="kind")]


class PolicySet(Request):
    rules: list[PolicyRuleIn] = Field(min_length=1, max_length=20)
    interval: (
        Annotated[int, Field(ge=1, le=366 * 86_400), Strict(), BeforeValidator(_integral)] | None
    ) = Field(None, description="seconds between scheduled runs; null: none")


class PolicyInfo(BaseModel):
    scope: str = Field(description="'acme' (a workspace) or 'acme/web' (a repository)")
    workspace: str
    repository: str | None
    rules: list[PolicyRule] = Field(description="empty: no policy (nothing is removed)")
    interval: int | None
    next_run_at: IsoTime | None
    updated_at: IsoTime | None
    updated_by: str | None
    covers: list[str] = Field(
        description="the repositories it decides (a workspace policy: those with none of "
        "their own), among those you may read"
    )


class PreviewRequest(Request):
    rules: list[PolicyRuleIn] | None = Field(
        None,
        max_length=20,
        description="rules to preview without saving them; omitted: the saved policy",
    )


class PreviewInfo(BaseModel):
    id: int
    scope: str
    rules: list[PolicyRule]
    saved: bool = Field(description="the scope's saved policy (false: rules given)")
    created_at: IsoTime
    created_by: str | None
    expires_at: IsoTime
    images: NonNegative
    tags: NonNegative
    remove: NonNegative
    keep: NonNegative
    freed: NonNegative = Field(
        description="bytes that deleting the removed tags leaves unreferenced: GC frees them"
    )
    kept: NonNegative = Field(
        description="bytes of the removed tags that stay, because other tags or images "
        "still reach them"
    )
    freed_blobs: NonNegative
    kept_blobs: NonNegative
    plan_ms: NonNegative


class PreviewTag(BaseModel):
    image_id: int
    image: str
    tag: str
    digest: str
    action: Literal["remove", "keep"]
    rule: str | None = Field(
        description="the deciding rule ('keep-last 10', ...), 'index' or 'subject' for "
        "tags that follow an index or subject, null when no rule matched"
    )
    reason: str
    pushed_at: IsoTime
    last_pulled: IsoTime | None
    size: NonNegative


class PreviewImage(BaseModel):
    image_id: int
    image: str
    remove: NonNegative
    keep: NonNegative


class PreviewRun(Request):
    keep: list[TagRef] = Field(
        default_factory=list,
        max_length=100_000,
        description="one-off exceptions: tags of the preview to keep this time",
    )


class PolicyRunInfo(BaseModel):
    id: int
    scope: str
    trigger: Literal["manual", "schedule"]
    actor: str | None
    node: str = Field(description="host:pid of the registry process that ran it")
    state: Literal["running", "done", "failed"]
    preview_id: int | None
    rules: list[PolicyRule]
    started_at: IsoTime
    finished_at: IsoTime | None
    tags_planned: NonNegative
    tags_deleted: NonNegative
    tags_changed: NonNegative = Field(
        description="planned tags left alone: pushed again onto another digest since"
    )
    tags_missing: NonNegative = Field(description="planned tags that were already gone")
    bytes_freed: NonNegative = Field(
        description="bytes the run's deletes left unreferenced (GC frees them)"
    )
    error: str | None


# recently deleted (the trash) ------------------------------------------------------

TrashKind = Literal["tag", "manifest", "image"]
RestoreStatus = Literal["restored", "conflict", "not_found", "forbidden", "invalid"]


class TrashEntry(BaseModel):
    """One restorable deletion: a tag (on its digest), a manifest deleted by digest
    with no tag on it, or a whole image with its tags."""

    id: int
    kind: TrashKind
    image_id: int
    image: str  # full name: workspace/repository/image
    repository: str
    tag: str | None
    digest: str | None
    replaced_by: str | None  # a tag moved by a push: the digest it went to
    size: NonNegative  # the manifest's bytes (an image: its tags' distinct blobs)
    tag_count: NonNegative
    action: str  # how it was deleted: tag.delete, manifest.delete, image.delete, ...
    deleted_by: str | None
    deleted_at: IsoTime
    expires_at: IsoTime


class TrashRestoreItem(Request):
    id: RowId
    # Restore under another name (a tag: the new tag; an image: the new image name),
    # for an entry whose name was reused since.
    as_name: str | None = Field(default=None, alias="as", min_length=1, max_length=255)


class TrashRestore(Request):
    entries: list[TrashRestoreItem] = Field(min_length=1, max_length=1000)


class TrashRestoreResult(BaseModel):
    id: int
    status: RestoreStatus
    message: str
    image_id: int | None = None
    tag: str | None = None
    digest: str | None = None


class TrashRestored(BaseModel):
    results: list[TrashRestoreResult]
    restored: NonNegative


class TrashEmpty(Request):
    """What to empty: the ``entries`` given, and with ``all`` every entry of the
    workspace (of ``repository`` if given, deleted at least ``older_than_s`` seconds ago
    if given). Neither: nothing."""

    entries: list[RowId] | None = Field(default=None, max_length=10_000)
    all: StrictBool = False
    repository: str | None = Field(default=None, min_length=1, max_length=63)
    older_than_s: Annotated[float, Field(ge=0, le=100 * 365 * 86400)] | None = None


class TrashEmptyResult(BaseModel):
    id: int
    status: Literal["emptied", "not_found", "forbidden"]


class TrashEmptied(BaseModel):
    results: list[TrashEmptyResult]
    emptied: NonNegative
