"""The metadata schema (SQLAlchemy Core), shared by SQLite and PostgreSQL.

References that keep content alive are foreign keys with RESTRICT
(``manifest_layers.blob_id``, ``manifests.config_blob_id``,
``manifest_children.child_id``, ``tags.manifest_id``): a new reference to a blob and
the GC's delete of that blob cannot both commit (DESIGN.md, race safety rule 2).

Times are integer milliseconds since the epoch (UTC): comparable in SQL on both
dialects and free of time-zone surprises.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.schema import SchemaItem

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# 64-bit ids and sizes; SQLite's INTEGER PRIMARY KEY wants plain Integer to autoincrement.
Id = BigInteger().with_variant(Integer(), "sqlite")
Ms = BigInteger  # milliseconds since the epoch
TagName = String(128).with_variant(String(128, collation="C"), "postgresql")


def entity_table(name: str, *items: SchemaItem) -> Table:
    """A table of things with a surrogate ``id``, which is never handed out twice.

    Ids leave the database: the API addresses images by id, queues and caches hold
    them, clients keep them across a refresh. A reused id would make a stale one name
    a newer, unrelated row (an event stream showing another repository's events, a
    delete removing someone else's image), so SQLite gets AUTOINCREMENT (plain rowids
    reuse the highest id after a delete) and PostgreSQL an identity column.
    """
    return Table(
        name,
        metadata,
        Column("id", Id, Identity(), primary_key=True),
        *items,
        sqlite_autoincrement=True,
    )


settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

users = entity_table(
    "users",
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("is_superuser", Boolean, nullable=False, default=False),
    Column("created_at", Ms, nullable=False),
    # A random value replaced whenever the user's credentials change (password,
    # removal): remembered logins and bearer tokens carry the stamp they were made
    # under and stop working on every node once it differs (app.registry.auth).
    Column("credential_stamp", String(32), nullable=False, server_default=""),
    # Bumped by every change of the user's memberships and grants: what was worked out
    # from them and kept (an open event stream's visibility) is worked out again.
    Column("access_version", Integer, nullable=False, server_default="0"),
)

# Failed sign-ins per key ("user:<name>" or "addr:<client address>"), shared by every
# node: the back-off of app.registry.throttle.
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_at", Ms, nullable=False),
    Column("blocked_until", Ms, nullable=False),
)
Index("ix_login_failures_last", login_failures.c.last_at)

# Where each user last signed in successfully: those addresses are not locked out by
# failures that others cause (app.registry.throttle).
login_addresses = Table(
    "login_addresses",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("address", String(64), primary_key=True),
    Column("last_success_at", Ms, nullable=False),
)
Index("ix_login_addresses_last", login_addresses.c.last_success_at)

workspaces = entity_table(
    "workspaces",
    Column("slug", String(63), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("created_at", Ms, nullable=False),
)

workspace_members = Table(
    "workspace_members",
    metadata,
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("is_admin", Boolean, nullable=False, default=False),
)

projects = entity_table(
    "projects",
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("created_at", Ms, nullable=False),
    UniqueConstraint("workspace_id", "key"),
)

repositories = entity_table(
    "repositories",
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Id, ForeignKey("projects.id", ondelete="RESTRICT"), nullable=False),
    Column("slug", String(63), nullable=False),
    Column("created_at", Ms, nullable=False),
    UniqueConstraint("workspace_id", "slug"),
)
Index("ix_repositories_project", repositories.c.project_id)

grants = Table(
    "grants",
    metadata,
    Column(
        "repository_id", Id, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("permission", Integer, nullable=False),  # app.core.permissions.Permission
)
Index("ix_grants_user", grants.c.user_id)

images = entity_table(
    "images",
    Column("repository_id", Id, ForeignKey("repositories.id", ondelete="RESTRICT"), nullable=False),
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="RESTRICT"), nullable=False),
    Column("name", String(255), nullable=False),  # the <image> part, may contain '/'
    Column("created_at", Ms, nullable=False),
    Column("last_push_at", Ms, nullable=True),
    # Derived: how many tags the image has, kept with every tag change (listings show
    # it on every page; counting 100,000 tags per page is what it saves).
    Column("tag_count", Integer, nullable=False, default=0),
    # Deleted into the trash at this time (NULL: live). A trashed image keeps its row,
    # tags and manifests, invisible to both APIs, until it is restored (same id) or its
    # trash entry expires or is emptied (app.registry.trash).
    Column("trashed_at", Ms, nullable=True),
)
Index("ix_images_workspace", images.c.workspace_id)
# A name belongs to one live image; trashed images may share it with a newer one.
Index(
    "uq_images_live_name",
    images.c.repository_id,
    images.c.name,
    unique=True,
    sqlite_where=images.c.trashed_at.is_(None),
    postgresql_where=images.c.trashed_at.is_(None),
)

# One row per stored object: content-addressed, deduplicated per workspace.
blobs = entity_table(
    "blobs",
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="RESTRICT"), nullable=False),
    Column("digest", String(200), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(255), nullable=True),
    # The generation: the stored object's key is <workspace>/<digest>/<generation>.
    Column("generation", String(36), nullable=False),
    Column("created_at", Ms, nullable=False),
    # Last upload, HEAD, GET-check or mount: the GC skips blobs touched within the grace.
    Column("touched_at", Ms, nullable=False),
    # How many images reach this blob from a tag (derived; see app.registry.gc.usage).
    Column("image_refs", Integer, nullable=False, default=0),
    # How many images reach it from the trash (trash_usage rows; app.registry.gc.usage).
    Column("trash_refs", Integer, nullable=False, default=0),
    UniqueConstraint("workspace_id", "digest"),
)
# Storage figures read sizes by reference count: one covering index scan per workspace
# (app.registry.gc.storage), and the shared blobs (image_refs > 1) without a scan.
Index(
    "ix_blobs_workspace_refs",
    blobs.c.workspace_id,
    blobs.c.image_refs,
    blobs.c.trash_refs,
    blobs.c.size,
)
# Object storage keys objects by generation alone: fsck finds a listed object's row.
Index("ix_blobs_generation", blobs.c.generation)

# A blob is visible under an image only when linked to it (upload, mount or manifest).
image_blobs = Table(
    "image_blobs",
    metadata,
    Column("image_id", Id, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("blob_id", Id, ForeignKey("blobs.id", ondelete="CASCADE"), primary_key=True),
    Column("linked_at", Ms, nullable=False),
)
Index("ix_image_blobs_blob", image_blobs.c.blob_id)

manifests = entity_table(
    "manifests",
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="RESTRICT"), nullable=False),
    Column("image_id", Id, ForeignKey("images.id", ondelete="RESTRICT"), nullable=False),
    Column("digest", String(200), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("artifact_type", String(255), nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("config_blob_id", Id, ForeignKey("blobs.id", ondelete="RESTRICT"), nullable=True),
    Column("subject_digest", String(200), nullable=True),
    # Compressed size: payload + config + layers, or for an index the sum over children.
    Column("total_size", BigInteger, nullable=False),
    Column("platforms", Text, nullable=True),  # comma-separated os/arch[/variant]
    Column("created", String(64), nullable=True),  # from the image config
    Column("annotations", Text, nullable=True),  # JSON, for the referrers API
    Column("created_at", Ms, nullable=False),
    Column("touched_at", Ms, nullable=False),
    # Last GET/HEAD by any reference, written in batches (app.registry.pulls).
    Column("last_pulled_at", Ms, nullable=True),
    # Derived (app.registry.gc.usage): the tags on it, its live parent indexes and its
    # subject if live. The manifest is live -- reached from a tag -- while > 0.
    Column("holders", Integer, nullable=False, default=0),
    # The same for the trash: trash entries naming it (and the tags of its image while
    # the image is in the trash), its trash-held parents and subject. GC keeps it > 0.
    Column("trash_holders", Integer, nullable=False, default=0),
    # Deleted by digest into the trash at this time (NULL: visible): answered 404 by
    # digest, but kept for a restore while the trash holds it.
    Column("trashed_at", Ms, nullable=True),
    UniqueConstraint("image_id", "digest"),
)
Index("ix_manifests_subject", manifests.c.image_id, manifests.c.subject_digest)
Index("ix_manifests_config", manifests.c.config_blob_id)
Index("ix_manifests_workspace_digest", manifests.c.workspace_id, manifests.c.digest)

manifest_layers = Table(
    "manifest_layers",
    metadata,
    Column("manifest_id", Id, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("blob_id", Id, ForeignKey("blobs.id", ondelete="RESTRICT"), nullable=False),
)
Index("ix_manifest_layers_blob", manifest_layers.c.blob_id)

manifest_children = Table(
    "manifest_children",
    metadata,
    Column("parent_id", Id, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True),
    Column("child_id", Id, ForeignKey("manifests.id", ondelete="RESTRICT"), primary_key=True),
)
Index("ix_manifest_children_child", manifest_children.c.child_id)

tags = entity_table(
    "tags",
    Column("image_id", Id, ForeignKey("images.id", ondelete="RESTRICT"), nullable=False),
    # Byte order on PostgreSQL too (SQLite compares bytes already): tag order and the
    # keyset cursors then agree on both dialects, and the index below serves both.
    Column("name", TagName, nullable=False),
    Column("manifest_id", Id, ForeignKey("manifests.id", ondelete="RESTRICT"), nullable=False),
    Column("pushed_at", Ms, nullable=False),
    # Copies of the manifest's total_size and created ('' when unknown), set with
    # manifest_id (manifests never change): sorting 100,000 tags by size or creation
    # is then a range of an index below, not a join and a sort of every tag per page.
    Column("manifest_size", BigInteger, nullable=False),
    Column("manifest_created", String(64), nullable=False),
    # Last GET/HEAD by this name while on manifest_id (cleared when the tag moves),
    # written in batches (app.registry.pulls).
    Column("last_pulled_at", Ms, nullable=True),
    UniqueConstraint("image_id", "name"),
)
# A manifest's tags in name order: the "other tags" of a listing's page are ranges.
Index("ix_tags_manifest", tags.c.manifest_id, tags.c.name)
# tags/list order (the distribution spec's case-insensitive lexical order, ties by
# the exact name): each page is a range of this index, not a sort of every tag.
Index("ix_tags_image_lower_name", tags.c.image_id, func.lower(tags.c.name), tags.c.name)
Index("ix_tags_image_pushed", tags.c.image_id, tags.c.pushed_at, tags.c.id)
Index("ix_tags_image_size", tags.c.image_id, tags.c.manifest_size, tags.c.id)
Index("ix_tags_image_created", tags.c.image_id, tags.c.manifest_created, tags.c.id)

# Derived: (image, blob) pairs where the blob is reachable from a tag of the image,
# with the number of live manifests of the image referencing it. Maintained in the
# same transaction as every tag change (app.registry.gc.usage).
blob_usage = Table(
    "blob_usage",
    metadata,
    Column("blob_id", Id, ForeignKey("blobs.id", ondelete="CASCADE"), primary_key=True),
    Column("image_id", Id, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("refs", Integer, nullable=False, default=0),
)
Index("ix_blob_usage_image", blob_usage.c.image_id)

# The same pairs for what the trash holds: blobs reachable from trash entries (and the
# tags of trashed images), with the number of trash-held manifests referencing them.
trash_usage = Table(
    "trash_usage",
    metadata,
    Column("blob_id", Id, ForeignKey("blobs.id", ondelete="CASCADE"), primary_key=True),
    Column("image_id", Id, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("refs", Integer, nullable=False, default=0),
)
Index("ix_trash_usage_image", trash_usage.c.image_id)

upload_sessions = Table(
    "upload_sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("image_id", Id, ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
    Column("workspace_id", Id, nullable=False),
    Column("size", BigInteger, nullable=False, default=0),
    Column("created_at", Ms, nullable=False),
    Column("updated_at", Ms, nullable=False),
    # Object storage only (app.registry.s3_uploads): the state every node needs
    # to take the upload's next chunk. The multipart upload, once begun, writes
    # the object under this generation's key.
    Column("generation", String(36), nullable=True),
    Column("multipart_id", Text, nullable=True),
    # Bytes past the last part, staged as an object of their own (S3 refuses parts
    # under 5 MiB but the last), named by staged_name (below).
    Column("staged", BigInteger, nullable=False, server_default="0"),
    # Bumped by every chunk that lands: a chunk commits only on the version it read.
    Column("version", Integer, nullable=False, server_default="0"),
    Column("next_part", Integer, nullable=False, server_default="1"),
    # Who opened it (NULL: opened before this was recorded): open sessions are
    # limited per user and per workspace (app.registry.uploads.UploadLimits).
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    # The staged object's name, made by the chunk that wrote it: two chunks racing
    # on the session never write (or clean up) the same object. NULL: named by the
    # version (a row from before names were recorded).
    Column("staged_name", String(64), nullable=True),
)
Index("ix_upload_sessions_image", upload_sessions.c.image_id)
Index("ix_upload_sessions_user", upload_sessions.c.user_id)
Index("ix_upload_sessions_workspace", upload_sessions.c.workspace_id)

# The multipart upload's parts that landed (object storage only).
upload_parts = Table(
    "upload_parts",
    metadata,
    Column(
        "session_id",
        String(36),
        ForeignKey("upload_sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("part_number", Integer, primary_key=True),
    Column("etag", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
)

# GC review queues: one row per item, upserted so review_after only moves forward.
gc_manifest_reviews = Table(
    "gc_manifest_reviews",
    metadata,
    Column("manifest_id", Id, ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True),
    Column("workspace_id", Id, nullable=False),
    Column("review_after", Ms, nullable=False),
    Column("event", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
)
Index("ix_gc_manifest_reviews_due", gc_manifest_reviews.c.review_after)

gc_blob_reviews = Table(
    "gc_blob_reviews",
    metadata,
    Column("blob_id", Id, ForeignKey("blobs.id", ondelete="CASCADE"), primary_key=True),
    Column("workspace_id", Id, nullable=False),
    Column("review_after", Ms, nullable=False),
    Column("event", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
)
Index("ix_gc_blob_reviews_due", gc_blob_reviews.c.review_after)

gc_runs = entity_table(
    "gc_runs",
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("triggers", String(255), nullable=False),  # comma-separated events
    Column("started_at", Ms, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("manifests_deleted", Integer, nullable=False),
    Column("blobs_deleted", Integer, nullable=False),
    Column("bytes_freed", BigInteger, nullable=False),
)
Index("ix_gc_runs_workspace", gc_runs.c.workspace_id, gc_runs.c.started_at)

storage_samples = entity_table(
    "storage_samples",
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("at", Ms, nullable=False),
    Column("stored", BigInteger, nullable=False),
    Column("referenced", BigInteger, nullable=False),
    Column("pending", BigInteger, nullable=False),
    Column("in_trash", BigInteger, nullable=False, default=0),
)
Index("ix_storage_samples_workspace", storage_samples.c.workspace_id, storage_samples.c.at)

# Recently deleted (app.registry.trash): one row per restorable thing -- a tag (kind
# "tag": the tag's name on its manifest), a manifest deleted by digest with no tag on
# it (kind "manifest"), or a whole image (kind "image": its tags stay in ``tags``,
# its row is marked trashed). While the row lives, what it names is held (the TRASH
# holders of app.registry.gc.usage) and GC never frees it.
trash_entries = entity_table(
    "trash_entries",
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("repository_id", Id, nullable=False),
    Column("image_id", Id, ForeignKey("images.id", ondelete="RESTRICT"), nullable=False),
    Column("kind", String(8), nullable=False),  # "tag" | "manifest" | "image"
    Column("tag", TagName, nullable=True),
    Column("manifest_id", Id, ForeignKey("manifests.id", ondelete="RESTRICT"), nullable=True),
    Column("digest", String(200), nullable=True),
    # A tag moved by a push: the digest the push put it on (restore = roll back).
    Column("replaced_by", String(200), nullable=True),
    Column("pushed_at", Ms, nullable=True),  # the tag's push time, given back on restore
    Column("size", BigInteger, nullable=False),  # the manifest's (an image: its tags') bytes
    Column("tag_count", Integer, nullable=False),  # an image's tags; 1 or 0 otherwise
    Column("action", String(32), nullable=False),  # how it was deleted (tag.delete, ...)
    Column("deleted_by", String(64), nullable=True),
    Column("deleted_at", Ms, nullable=False),
    Column("expires_at", Ms, nullable=False),
)
Index(
    "ix_trash_entries_workspace",
    trash_entries.c.workspace_id,
    trash_entries.c.deleted_at,
    trash_entries.c.id,
)
Index(
    "ix_trash_entries_repository",
    trash_entries.c.repository_id,
    trash_entries.c.deleted_at,
    trash_entries.c.id,
)
Index("ix_trash_entries_image", trash_entries.c.image_id, trash_entries.c.tag, trash_entries.c.id)
Index("ix_trash_entries_manifest", trash_entries.c.manifest_id)
Index("ix_trash_entries_expires", trash_entries.c.expires_at)

audit_log = entity_table(
    "audit_log",
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=True),
    Column("at", Ms, nullable=False),
    Column("actor", String(64), nullable=True),  # user name; NULL for the GC
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("detail", Text, nullable=True),  # JSON
)
Index("ix_audit_log_workspace", audit_log.c.workspace_id, audit_log.c.id)

# Cleanup policies (app.registry.policies.plans) ---------------------------------------

# One per scope: a workspace (repository_id NULL) or a repository, whose own policy
# overrides its workspace's. ``scope`` is "ws:<id>" or "repo:<id>", unique.
cleanup_policies = entity_table(
    "cleanup_policies",
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("repository_id", Id, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=True),
    Column("scope", String(32), nullable=False, unique=True),
    Column("rules", Text, nullable=False),  # JSON: [{"kind", "value"}, ...]
    Column("interval_s", Integer, nullable=True),  # NULL: runs only when asked
    Column("next_run_at", Ms, nullable=True),
    Column("updated_at", Ms, nullable=False),
    Column("updated_by", String(64), nullable=True),
)
Index("ix_cleanup_policies_next_run", cleanup_policies.c.next_run_at)

# A preview: the plan of a policy (saved or given) over its scope at one moment,
# which a run executes exactly. Previews expire; their rows go with them.
policy_previews = entity_table(
    "policy_previews",
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("repository_id", Id, nullable=True),
    Column("scope", String(32), nullable=False),
    Column("rules", Text, nullable=False),
    Column("saved", Boolean, nullable=False),  # the scope's saved rules, or given ones
    Column("created_at", Ms, nullable=False),
    Column("created_by", String(64), nullable=True),
    Column("expires_at", Ms, nullable=False),
    Column("image_count", Integer, nullable=False),
    Column("tag_count", Integer, nullable=False),
    Column("remove_count", Integer, nullable=False),
    Column("freed", BigInteger, nullable=False),
    Column("kept", BigInteger, nullable=False),
    Column("freed_blobs", Integer, nullable=False),
    Column("kept_blobs", Integer, nullable=False),
    Column("plan_ms", Integer, nullable=False),
)
Index("ix_policy_previews_expires", policy_previews.c.expires_at)

# A preview's tags, in chunks: the rows of up to ``PREVIEW_CHUNK`` consecutive tags of
# one image, from ``position`` on, as zlib-compressed JSON (app.registry.policies.
# preview_rows). A plan may hold 100,000 tags: one table row per tag cost a preview
# more than planning did; a chunk per page-sized run of tags keeps paging by
# position, and the counts answer totals and per-image figures without opening rows.
policy_preview_chunks = Table(
    "policy_preview_chunks",
    metadata,
    Column(
        "preview_id", Id, ForeignKey("policy_previews.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("position", Integer, primary_key=True),  # of its first tag: image, then tag order
    Column("image_id", Id, nullable=False),  # no FK: the image may go meanwhile
    Column("repository_id", Id, nullable=False),
    Column("image", String(255), nullable=False),
    Column("tag_count", Integer, nullable=False),
    Column("remove_count", Integer, nullable=False),
    Column("rows", LargeBinary, nullable=False),
)

# A run: who or which schedule, what it deleted, what it refused. At most one run of
# a scope is "running" at a time (the partial unique index), on every node.
policy_runs = entity_table(
    "policy_runs",
    Column("workspace_id", Id, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    Column("repository_id", Id, nullable=True),
    Column("scope", String(32), nullable=False),
    Column("preview_id", Id, nullable=True),  # no FK: previews expire
    Column("rules", Text, nullable=False),
    Column("trigger", String(16), nullable=False),  # "manual" | "schedule"
    Column("actor", String(64), nullable=True),
    Column("node", String(128), nullable=False),  # host:pid of the process running it
    Column("state", String(16), nullable=False),  # "running" | "done" | "failed"
    Column("started_at", Ms, nullable=False),
    Column("heartbeat_at", Ms, nullable=False),
    Column("finished_at", Ms, nullable=True),
    Column("tags_planned", Integer, nullable=False),
    Column("tags_deleted", Integer, nullable=False),
    Column("tags_changed", Integer, nullable=False),  # refused: moved since the plan
    Column("tags_missing", Integer, nullable=False),  # gone already
    Column("bytes_freed", BigInteger, nullable=False),  # made unreferenced: GC frees them
    Column("error", Text, nullable=True),
)
Index("ix_policy_runs_workspace", policy_runs.c.workspace_id, policy_runs.c.id)
Index(
    "uq_policy_runs_running",
    policy_runs.c.scope,
    unique=True,
    sqlite_where=policy_runs.c.state == "running",
    postgresql_where=policy_runs.c.state == "running",
)
