"""Images, blobs, manifests and tags in the metadata store.

Every mutating function runs inside the caller's write transaction and queues the
GC reviews its event calls for in that same transaction (DESIGN.md §1), and keeps
the reference counts (app.registry.gc.usage) in it too. On PostgreSQL a write first
takes its image's turn (:func:`lock_image`), then locks the rows a new reference
depends on in sorted digest order (blobs ``FOR KEY SHARE``, which the GC's
``FOR UPDATE`` cannot pass; manifests ``FOR UPDATE``); SQLite's ``BEGIN IMMEDIATE``
already serializes writers.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app.core.manifests import MAX_SIZE, Manifest, parse_image_config
from app.core.mediatypes import IMAGE_CONFIGS
from app.registry import trash_records, uploads
from app.registry.accounts import Repository
from app.registry.db import schema as s
from app.registry.db.engine import inserted_id
from app.registry.errors import (
    BlobUnknown,
    Conflict,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
)
from app.registry.gc import review as gc_review
from app.registry.gc import reviews, usage

MAX_CONFIG_READ = 1 << 20
# The column that keeps a config's creation date (a timestamp is ~30 characters).
MAX_CREATED = 64


@dataclass(frozen=True, slots=True)
class Timing:
    """GC timing, in milliseconds. ``trash_retention``: how long a delete stays
    restorable (app.registry.trash); 0 turns the trash off and deletes are final."""

    review_delay: int = 300_000
    upload_grace: int = 3_600_000
    trash_retention: int = 0

    @property
    def trash_on(self) -> bool:
        return self.trash_retention > 0


@dataclass(frozen=True, slots=True)
class Image:
    id: int
    workspace_id: int
    repository_id: int
    name: str


@dataclass(frozen=True, slots=True)
class Blob:
    id: int
    workspace_id: int
    digest: str
    size: int
    generation: str


@dataclass(frozen=True, slots=True)
class StoredManifest:
    id: int
    digest: str
    media_type: str
    payload: bytes
    subject_digest: str | None
    tag_id: int | None = None  # the tag it was fetched by


@dataclass(slots=True)
class Change:
    """What a write did, for events and audit after commit."""

    events: list[dict[str, Any]] = field(default_factory=list)
    # Upload sessions the write ended: their data goes once it commits.
    ended_uploads: list[uploads.Session] = field(default_factory=list)


# images ----------------------------------------------------------------------


# Statements every push runs, built once: executed with parameters they come straight
# from SQLAlchemy's compiled cache instead of being rebuilt and re-keyed per request.
_i, _m, _t = s.images.c, s.manifests.c, s.tags.c
# The live image of that name: an image in the trash is not found.
_FIND_IMAGE = select(_i.id, _i.workspace_id, _i.repository_id, _i.name).where(
    _i.repository_id == bindparam("repo"), _i.name == bindparam("name"), _i.trashed_at.is_(None)
)
_FIND_IMAGE_LOCKED = _FIND_IMAGE.with_for_update(key_share=True)  # NO KEY UPDATE: lock_image
_LOCK_IMAGE = (
    select(_i.id, _i.trashed_at).where(_i.id == bindparam("image")).with_for_update(key_share=True)
)
_PUSHED = (
    update(s.images)
    .where(_i.id == bindparam("image"))
    .values(last_push_at=bindparam("now"), tag_count=_i.tag_count + bindparam("added"))
)
_EXISTING = (
    select(_m.id, _m.total_size, _m.created, _m.trashed_at)
    .where(_m.image_id == bindparam("image"), _m.digest == bindparam("digest"))
    .with_for_update()
)
_TOUCH_MANIFEST = (
    update(s.manifests)
    .where(_m.id == bindparam("mid"), _m.touched_at < bindparam("now"))
    .values(touched_at=bindparam("now"))
)
_INSERT_MANIFEST = insert(s.manifests)
_TAG_ROW = (
    select(_t.id, _t.manifest_id, _t.pushed_at, _t.manifest_size, _m.digest)
    .join(s.manifests, _m.id == _t.manifest_id)
    .where(_t.image_id == bindparam("image"), _t.name == bindparam("tag"))
    .with_for_update(of=s.tags)
)
_INSERT_TAG = insert(s.tags)
_MOVE_TAG = (
    update(s.tags)
    .where(_t.id == bindparam("tid"))
    .values(
        manifest_id=bindparam("mid"),
        pushed_at=bindparam("now"),
        last_pulled_at=None,  # the tag's pulls were of its old manifest: they start again
        manifest_size=bindparam("msize"),
        manifest_created=bindparam("mcreated"),
    )
)
_REPUSH_TAG = update(s.tags).where(_t.id == bindparam("tid")).values(pushed_at=bindparam("now"))


def find_image(
    conn: Connection, repo: Repository, name: str, *, lock: bool = False
) -> Image | None:
    """The live image of that name (an image in the trash is not found)."""
    stmt = _FIND_IMAGE_LOCKED if lock else _FIND_IMAGE
    row = conn.execute(stmt, {"repo": repo.id, "name": name}).first()
    return Image(*row) if row is not None else None


def lock_image(conn: Connection, image: Image, *, live: bool = True) -> None:
    """Take the image's turn (PostgreSQL; SQLite writers are serial anyway).

    Every write that changes an image's tags, manifests or reference counts locks the
    image row first, FOR NO KEY UPDATE: writes to one image take turns, so its
    counters (app.registry.gc.usage) are changed by one transaction at a time and no two
    writers of one image can deadlock over its manifest rows. The GC cannot remove
    the row as empty meanwhile (its FOR UPDATE SKIP LOCKED passes it by), and foreign
    keys to it (KEY SHARE) are not blocked. Writes to different images run side by
    side; where they meet -- blob rows -- they lock in id order.

    ``live``: the image must still be live once its turn comes -- a writer that found
    it before a delete put it in the trash (or removed it) meanwhile would otherwise
    change the tags the trash now holds -- else NameUnknown (404). The trash's own
    writers (restore, empty, expiry) lock an image in the trash with ``live=False``."""
    row = conn.execute(_LOCK_IMAGE, {"image": image.id}).first()
    if live and (row is None or row.trashed_at is not None):
        raise NameUnknown(
            f"image {image.name} was deleted meanwhile", detail={"image_id": image.id}
        )


def ensure_image(conn: Connection, repo: Repository, name: str, now: int) -> Image:
    # Locked (see lock_image): the image's writes take turns, and the GC cannot remove
    # the row as empty while this transaction adds its first session, link or manifest.
    image = find_image(conn, repo, name, lock=True)
    if image is not None:
        return image
    try:
        with conn.begin_nested():
            conn.execute(
                insert(s.images).values(
                    repository_id=repo.id,
                    workspace_id=repo.workspace_id,
                    name=name,
                    created_at=now,
                    last_push_at=None,
                )
            )
    except IntegrityError:
        pass  # created concurrently
    image = find_image(conn, repo, name)
    assert image is not None
    return image


def image_by_id(conn: Connection, image_id: int, *, trashed: bool = False) -> Image | None:
    """The live image with this id (``trashed``: the one in the trash with it)."""
    i = s.images.c
    row = conn.execute(
        select(i.id, i.workspace_id, i.repository_id, i.name).where(
            i.id == image_id, i.trashed_at.is_not(None) if trashed else i.trashed_at.is_(None)
        )
    ).first()
    return Image(*row) if row is not None else None


# blobs -----------------------------------------------------------------------

_BLOB_COLS = (
    s.blobs.c.id,
    s.blobs.c.workspace_id,
    s.blobs.c.digest,
    s.blobs.c.size,
    s.blobs.c.generation,
)


def workspace_blob(
    conn: Connection, workspace_id: int, digest: str, *, lock: bool = False
) -> Blob | None:
    q = select(*_BLOB_COLS).where(
        s.blobs.c.workspace_id == workspace_id, s.blobs.c.digest == digest
    )
    if lock:
        q = q.with_for_update()
    row = conn.execute(q).first()
    return Blob(*row) if row is not None else None


def image_blob(conn: Connection, image: Image, digest: str, *, lock: bool = False) -> Blob | None:
    """The blob if it is linked to the image (what blob HEAD/GET may answer for)."""
    q = (
        select(*_BLOB_COLS)
        .join(s.image_blobs, s.image_blobs.c.blob_id == s.blobs.c.id)
        .where(
            s.blobs.c.workspace_id == image.workspace_id,
            s.blobs.c.digest == digest,
            s.image_blobs.c.image_id == image.id,
        )
    )
    if lock:
        q = q.with_for_update(of=s.blobs)
    row = conn.execute(q).first()
    return Blob(*row) if row is not None else None


def touch_blob(conn: Connection, blob_id: int, now: int) -> None:
    conn.execute(
        update(s.blobs)
        .where(s.blobs.c.id == blob_id, s.blobs.c.touched_at < now)
        .values(touched_at=now)
    )


def link_blob(conn: Connection, image_id: int, blob_id: int, now: int) -> None:
    exists = conn.execute(
        select(s.image_blobs.c.blob_id).where(
            s.image_blobs.c.image_id == image_id, s.image_blobs.c.blob_id == blob_id
        )
    ).first()
    if exists is None:
        conn.execute(
            insert(s.image_blobs).values(image_id=image_id, blob_id=blob_id, linked_at=now)
        )


def finish_upload(
    conn: Connection,
    image: Image,
    digest: str,
    size: int,
    generation: str,
    timing: Timing,
    now: int,
) -> tuple[Blob, bool]:
    """Record a verified upload. Returns the blob and whether this upload's object is
    the one now stored (False: the workspace already held the digest, so the caller
    discards its copy)."""
    blob = workspace_blob(conn, image.workspace_id, digest, lock=True)
    created = False
    if blob is None:
        # Two nodes (or requests) may finish the same digest at once: the second
        # insert waits for the first to commit, does nothing, and takes its row.
        dialect = conn.dialect.name
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(s.blobs)
        blob_id = conn.execute(
            stmt.values(
                workspace_id=image.workspace_id,
                digest=digest,
                size=size,
                generation=generation,
                created_at=now,
                touched_at=now,
                image_refs=0,
            )
            .on_conflict_do_nothing(index_elements=["workspace_id", "digest"])
            .returning(s.blobs.c.id)
        ).scalar()
        if blob_id is not None:
            created = True
            blob = Blob(int(blob_id), image.workspace_id, digest, size, generation)
        else:
            blob = workspace_blob(conn, image.workspace_id, digest, lock=True)
            assert blob is not None
    if not created:
        touch_blob(conn, blob.id, now)
    link_blob(conn, image.id, blob.id, now)
    # An upload that no manifest ever references is collected once the grace ends.
    reviews.queue_blobs(
        conn, image.workspace_id, [blob.id], now + timing.upload_grace, reviews.BLOB_UPLOAD
    )
    return blob, created


def mount_blob(
    conn: Connection, source: Image, target: Image, digest: str, now: int
) -> Blob | None:
    if source.workspace_id != target.workspace_id:
        return None
    blob = image_blob(conn, source, digest, lock=True)
    if blob is None:
        return None
    touch_blob(conn, blob.id, now)
    link_blob(conn, target.id, blob.id, now)
    return blob


def unlink_blob(conn: Connection, image: Image, digest: str, timing: Timing, now: int) -> None:
    """A blob DELETE: the blob is no longer served under this image. Refused while a
    manifest of the image uses it as a layer or config: its pulls would break, and
    no restore could bring the link back (DESIGN.md, deletes over OCI)."""
    blob = image_blob(conn, image, digest, lock=True)
    if blob is None:
        raise BlobUnknown(f"blob {digest} is not known to this image", detail={"digest": digest})
    m = s.manifests.c
    user = conn.execute(
        select(m.digest)
        .where(
            m.image_id == image.id,
            (m.config_blob_id == blob.id)
            | m.id.in_(
                select(s.manifest_layers.c.manifest_id).where(
                    s.manifest_layers.c.blob_id == blob.id
                )
            ),
        )
        .order_by(m.digest)
        .limit(1)
    ).scalar()
    if user is not None:
        raise Conflict(
            f"blob {digest} is a layer or the config of manifest {user} of this image; "
            "delete that manifest first",
            detail={"digest": digest, "manifest": user},
        )
    conn.execute(
        delete(s.image_blobs).where(
            s.image_blobs.c.image_id == image.id, s.image_blobs.c.blob_id == blob.id
        )
    )
    reviews.queue_blobs(
        conn, image.workspace_id, [blob.id], now + timing.review_delay, reviews.BLOB_UNLINK
    )


# manifests -------------------------------------------------------------------

_MANIFEST_COLS = (
    s.manifests.c.id,
    s.manifests.c.digest,
    s.manifests.c.media_type,
    s.manifests.c.payload,
    s.manifests.c.subject_digest,
)


def get_manifest(
    conn: Connection, image: Image, reference: str, *, by_digest: bool
) -> StoredManifest:
    if by_digest:
        # A manifest deleted by digest into the trash is gone for the OCI API.
        q = select(*_MANIFEST_COLS, literal(None).label("tag_id")).where(
            s.manifests.c.image_id == image.id,
            s.manifests.c.digest == reference,
            s.manifests.c.trashed_at.is_(None),
        )
    else:
        q = (
            select(*_MANIFEST_COLS, s.tags.c.id.label("tag_id"))
            .join(s.tags, s.tags.c.manifest_id == s.manifests.c.id)
            .where(s.tags.c.image_id == image.id, s.tags.c.name == reference)
        )
    row = conn.execute(q).first()
    if row is None:
        raise ManifestUnknown(
            f"manifest {reference} is not known to this image", detail={"reference": reference}
        )
    return StoredManifest(
        row.id, row.digest, row.media_type, bytes(row.payload), row.subject_digest, row.tag_id
    )


def touch_manifest(conn: Connection, manifest_id: int, now: int) -> None:
    conn.execute(_TOUCH_MANIFEST, {"mid": manifest_id, "now": now})


ConfigReader = Callable[[Blob], bytes | None]

# The blobs a manifest references, in digest order. KEY SHARE (PostgreSQL): the GC's
# FOR UPDATE of the blob skips it or makes this wait, yet pushes sharing a layer do
# not queue behind each other, nor behind a delete updating the blob's image_refs.
_PUSH_BLOBS = (
    select(*_BLOB_COLS)
    .join(s.image_blobs, s.image_blobs.c.blob_id == s.blobs.c.id)
    .where(
        s.blobs.c.workspace_id == bindparam("ws"),
        s.blobs.c.digest.in_(bindparam("digests", expanding=True)),
        s.image_blobs.c.image_id == bindparam("image"),
    )
    .order_by(s.blobs.c.digest)
    .with_for_update(of=s.blobs, read=True, key_share=True)
)


@dataclass(frozen=True, slots=True)
class _Subject:
    id: int
    digest: str
    live: bool
    trash_live: bool


def _subject_of(conn: Connection, image: Image, digest: str, manifest: Manifest) -> _Subject | None:
    """The stored subject of a manifest being created, if any, with its liveness (the
    image is locked: nothing changes it before this manifest counts as its referrer)."""
    if manifest.subject is None:
        return None
    subject_digest = str(manifest.subject.digest)
    if subject_digest == digest:
        return None
    row = conn.execute(
        select(s.manifests.c.id, s.manifests.c.holders, s.manifests.c.trash_holders).where(
            s.manifests.c.image_id == image.id, s.manifests.c.digest == subject_digest
        )
    ).first()
    if row is None:
        return None
    return _Subject(int(row.id), subject_digest, bool(row.holders), bool(row.trash_holders))


def put_manifest(
    conn: Connection,
    image: Image,
    digest: str,
    payload: bytes,
    manifest: Manifest,
    tag: str | None,
    read_config: ConfigReader,
    timing: Timing,
    now: int,
    actor: str | None = None,
    *,
    more_tags: Sequence[str] = (),
) -> Change:
    """Store a manifest (or find it stored) and point ``tag`` and ``more_tags`` (the
    distribution spec's ``?tag=`` parameters) at it."""
    change = Change()
    # Lock every blob and child the manifest references, in digest order.
    needed = sorted({str(d.digest) for d in manifest.blobs if not d.non_distributable})
    blob_rows: dict[str, Blob] = {}
    if needed:
        params = {"ws": image.workspace_id, "digests": needed, "image": image.id}
        blob_rows = {row.digest: Blob(*row) for row in conn.execute(_PUSH_BLOBS, params)}
    missing = [d for d in needed if d not in blob_rows]
    if missing:
        raise ManifestBlobUnknown(
            f"blob {missing[0]} is not known to this image; push it first",
            detail={"digest": missing[0]},
        )
    for d in manifest.blobs:
        stored = blob_rows.get(str(d.digest))
        if stored is not None and stored.size != d.size:
            # Sizes are shown and summed from the manifest: they must be the truth.
            raise ManifestInvalid(
                f"{d.digest} is {stored.size} bytes, the manifest says {d.size}",
                detail={"digest": str(d.digest), "size": stored.size, "declared": d.size},
            )
    child_rows: dict[str, Any] = {}
    child_digests = sorted({str(d.digest) for d in manifest.manifests})
    if child_digests:
        q2 = (
            select(
                s.manifests.c.id,
                s.manifests.c.digest,
                s.manifests.c.total_size,
                s.manifests.c.created,
                s.manifests.c.platforms,
                func.length(s.manifests.c.payload).label("length"),
            )
            .where(
                s.manifests.c.image_id == image.id,
                s.manifests.c.digest.in_(child_digests),
                # Deleted by digest into the trash: gone, until pushed again.
                s.manifests.c.trashed_at.is_(None),
            )
            .order_by(s.manifests.c.digest)
            .with_for_update()
        )
        child_rows = {row.digest: row for row in conn.execute(q2)}
        missing = [d for d in child_digests if d not in child_rows]
        if missing:
            raise ManifestBlobUnknown(
                f"manifest {missing[0]} referenced by this index is not known to this image",
                detail={"digest": missing[0]},
            )
        for d in manifest.manifests:
            length = int(child_rows[str(d.digest)].length)
            if length != d.size:
                raise ManifestInvalid(
                    f"manifest {d.digest} is {length} bytes, the index says {d.size}",
                    detail={"digest": str(d.digest), "size": length, "declared": d.size},
                )

    tags = list(dict.fromkeys([*([tag] if tag is not None else []), *more_tags]))
    existing = conn.execute(_EXISTING, {"image": image.id, "digest": digest}).first()
    # Holder changes, applied (and carried through the graph) once the rows are in.
    holders: dict[int, int] = defaultdict(int)
    trash_holders: dict[int, int] = defaultdict(int)
    counters = usage.BlobCounters()
    known: dict[int, usage.Edges] = {}
    # A tag row keeps copies of its manifest's size and creation date (sort keys).
    sort_keys: dict[str, Any]
    if existing is not None:
        manifest_id = int(existing.id)
        sort_keys = {
            "manifest_size": existing.total_size,
            "manifest_created": existing.created or "",
        }
        touch_manifest(conn, manifest_id, now)
        if existing.trashed_at is not None:
            # Deleted by digest into the trash and pushed again: it is back (its
            # trash entries stay, restorable as they were).
            usage.unhide(conn, [manifest_id], counters)
    else:
        subject = _subject_of(conn, image, digest, manifest)
        if subject is not None:
            referrers = usage.referrers_of(conn, image.id, digest)
            children = [int(r.id) for r in child_rows.values()]
            if (children or referrers) and usage.closes_cycle(
                conn, subject.id, children, referrers
            ):
                raise ManifestInvalid(
                    f"manifest {digest} reaches its own subject {subject.digest} through "
                    "its children or referrers; such a loop cannot be stored",
                    detail={"digest": digest, "subject": subject.digest},
                )
        created: str | None = None
        platforms: str | None = None
        if manifest.is_index:
            total = len(payload) + sum(int(r.total_size) for r in child_rows.values())
            plats = manifest.platforms or [
                p for r in child_rows.values() if r.platforms for p in r.platforms.split(",")
            ]
            platforms = ",".join(dict.fromkeys(plats)) or None
            dates = [r.created for r in child_rows.values() if r.created]
            created = max(dates) if dates else None
        else:
            total = len(payload) + sum(d.size for d in manifest.blobs)
            config = manifest.config
            if (
                config is not None
                and config.media_type in IMAGE_CONFIGS
                and config.size <= MAX_CONFIG_READ
            ):
                raw = read_config(blob_rows[str(config.digest)])
                if raw is not None:
                    info = parse_image_config(raw, strict=True)
                    if not info.readable:
                        raise ManifestInvalid(
                            f"config {config.digest} is not an image config (a JSON object "
                            f"in UTF-8) as its media type {config.media_type} says",
                            detail={"digest": str(config.digest)},
                        )
                    created, platforms = info.created, info.platform
                    if created is not None and len(created) > MAX_CREATED:
                        created = None  # not a date; tables show none rather than fail
        if total > MAX_SIZE:
            raise ManifestInvalid(f"the sizes in this manifest add up to more than {MAX_SIZE}")
        config_id = (
            blob_rows[str(manifest.config.digest)].id
            if manifest.config is not None and str(manifest.config.digest) in blob_rows
            else None
        )
        result = conn.execute(
            _INSERT_MANIFEST,
            {
                "workspace_id": image.workspace_id,
                "image_id": image.id,
                "digest": digest,
                "media_type": manifest.media_type,
                "artifact_type": manifest.effective_artifact_type,
                "payload": payload,
                "config_blob_id": config_id,
                "subject_digest": str(manifest.subject.digest) if manifest.subject else None,
                "total_size": total,
                "platforms": platforms,
                "created": created,
                "annotations": json.dumps(manifest.annotations) if manifest.annotations else None,
                "created_at": now,
                "touched_at": now,
                "holders": 0,
            },
        )
        manifest_id = inserted_id(result)
        sort_keys = {"manifest_size": total, "manifest_created": created or ""}
        layer_rows = [
            {"manifest_id": manifest_id, "position": i, "blob_id": blob_rows[str(d.digest)].id}
            for i, d in enumerate(manifest.layers)
            if not d.non_distributable
        ]
        if layer_rows:
            conn.execute(insert(s.manifest_layers), layer_rows)
        if child_rows:
            conn.execute(
                insert(s.manifest_children),
                [{"parent_id": manifest_id, "child_id": r.id} for r in child_rows.values()],
            )
        if subject is not None and subject.live:
            holders[manifest_id] += 1
        if subject is not None and subject.trash_live:
            trash_holders[manifest_id] += 1
        # Its edges and blobs are in hand: usage.hold need not read them back.
        known[manifest_id] = usage.Edges(
            image.id,
            frozenset(
                [
                    *([config_id] if config_id is not None else []),
                    *(r["blob_id"] for r in layer_rows),
                ]
            ),
            tuple(int(r.id) for r in child_rows.values()),
        )

    moved: list[trash_records.Deleted] = []
    new_tags = sum(
        _set_tag(conn, image, name, manifest_id, sort_keys, holders, now, moved) for name in tags
    )
    usage.hold(conn, holders, known=known, counters=counters)
    usage.hold(conn, trash_holders, usage.TRASH, counters=counters)
    if moved and timing.trash_on:
        # The digests tags left stay restorable: restoring one rolls the tag back.
        trash_records.record(
            conn,
            image.workspace_id,
            image.repository_id,
            image.id,
            [replace(d, replaced_by=digest) for d in moved],
            action=trash_records.TAG_MOVE,
            actor=actor,
            now=now,
            retention_ms=timing.trash_retention,
            counters=counters,
            events=change.events,
        )
    counters.flush(conn)
    if not timing.trash_on:
        # The manifests tags moved away from: reviewed once the delay has passed.
        moved_from = [mid for mid, delta in holders.items() if delta < 0]
        reviews.queue_manifests(
            conn, image.workspace_id, moved_from, now + timing.review_delay, reviews.TAG_REPUSH
        )
    if not tags:
        # Pushed by digest only: unless a tag, an index or a subject keeps it, the GC
        # collects it (never within the upload grace).
        reviews.queue_manifests(
            conn,
            image.workspace_id,
            [manifest_id],
            now + timing.review_delay,
            reviews.MANIFEST_BY_DIGEST,
        )
    conn.execute(_PUSHED, {"image": image.id, "now": now, "added": new_tags})
    named: list[str | None] = list(tags) or [None]
    for name in named:
        change.events.append(
            {
                "type": "pushed",
                "image_id": image.id,
                "repository_id": image.repository_id,
                "tag": name,
                "digest": digest,
                "actor": actor,
            }
        )
    return change


def _set_tag(
    conn: Connection,
    image: Image,
    tag: str,
    manifest_id: int,
    sort_keys: dict[str, Any],
    holders: dict[int, int],
    now: int,
    moved: list[trash_records.Deleted],
) -> bool:
    """Point a tag at a manifest (the holder changes go to ``holders``, the digest a
    moved tag leaves to ``moved``); True if the tag is new."""
    old = conn.execute(_TAG_ROW, {"image": image.id, "tag": tag}).first()
    if old is None:
        row = {"image_id": image.id, "name": tag, "manifest_id": manifest_id, "pushed_at": now}
        conn.execute(_INSERT_TAG, {**row, **sort_keys})
        holders[manifest_id] += 1
        return True
    if old.manifest_id != manifest_id:
        conn.execute(
            _MOVE_TAG,
            {
                "tid": old.id,
                "mid": manifest_id,
                "now": now,
                "msize": sort_keys["manifest_size"],
                "mcreated": sort_keys["manifest_created"],
            },
        )
        holders[manifest_id] += 1
        holders[int(old.manifest_id)] -= 1
        moved.append(
            trash_records.Deleted(
                int(old.manifest_id),
                str(old.digest),
                int(old.manifest_size),
                tag,
                pushed_at=int(old.pushed_at),
            )
        )
    else:
        conn.execute(_REPUSH_TAG, {"tid": old.id, "now": now})
    return False


def _count_tags(conn: Connection, image: Image, delta: int) -> None:
    if delta:
        conn.execute(
            update(s.images)
            .where(s.images.c.id == image.id)
            .values(tag_count=s.images.c.tag_count + delta)
        )


def _audit(
    conn: Connection,
    workspace_id: int,
    actor: str | None,
    action: str,
    target: str,
    detail: dict[str, Any],
    now: int,
) -> None:
    conn.execute(
        insert(s.audit_log).values(
            workspace_id=workspace_id,
            at=now,
            actor=actor,
            action=action,
            target=target,
            detail=json.dumps(detail, sort_keys=True),
        )
    )


def image_label(conn: Connection, image: Image) -> str:
    row = conn.execute(
        select(s.workspaces.c.slug, s.repositories.c.slug)
        .select_from(s.repositories)
        .join(s.workspaces, s.workspaces.c.id == s.repositories.c.workspace_id)
        .where(s.repositories.c.id == image.repository_id)
    ).first()
    assert row is not None
    return f"{row[0]}/{row[1]}/{image.name}"


def tag_digests(conn: Connection, image: Image, names: Sequence[str]) -> dict[str, str]:
    """The digest each of ``names`` is on now (absent: no such tag), rows locked as
    :func:`delete_tags` locks them, so the answer holds until the transaction ends."""
    lock_image(conn, image)  # the image's turn first, as every writer of it
    rows = conn.execute(
        select(s.tags.c.name, s.manifests.c.digest)
        .join(s.manifests, s.manifests.c.id == s.tags.c.manifest_id)
        .where(s.tags.c.image_id == image.id, s.tags.c.name.in_(sorted(set(names))))
        .order_by(s.tags.c.name)
        .with_for_update(of=s.tags)
    ).all()
    return {r.name: r.digest for r in rows}


def delete_tags(
    conn: Connection,
    image: Image,
    names: Sequence[str],
    timing: Timing,
    now: int,
    actor: str | None,
    *,
    how: str = trash_records.TAG_DELETE,
) -> tuple[list[str], list[str], Change]:
    """Delete tags of one image (into the trash when it is on; ``how`` is the action
    its entries record). Returns (deleted, not found, change)."""
    change = Change()
    lock_image(conn, image)
    wanted = sorted(set(names))
    t = s.tags.c
    rows = conn.execute(
        select(t.id, t.name, t.manifest_id, t.pushed_at, t.manifest_size, s.manifests.c.digest)
        .join(s.manifests, s.manifests.c.id == t.manifest_id)
        .where(t.image_id == image.id, t.name.in_(wanted))
        .order_by(t.name)
        .with_for_update(of=s.tags)
    ).all()
    found = {r.name for r in rows}
    if rows:
        conn.execute(delete(s.tags).where(t.id.in_([r.id for r in rows])))
        dropped: dict[int, int] = defaultdict(int)
        for r in rows:
            dropped[int(r.manifest_id)] -= 1
        counters = usage.BlobCounters()
        usage.hold(conn, dropped, counters=counters)
        _count_tags(conn, image, -len(rows))
        entries: dict[str, int] = {}
        if timing.trash_on:
            recorded = trash_records.record(
                conn,
                image.workspace_id,
                image.repository_id,
                image.id,
                [
                    trash_records.Deleted(
                        int(r.manifest_id),
                        str(r.digest),
                        int(r.manifest_size),
                        str(r.name),
                        pushed_at=int(r.pushed_at),
                    )
                    for r in rows
                ],
                action=how,
                actor=actor,
                now=now,
                retention_ms=timing.trash_retention,
                counters=counters,
                events=change.events,
            )
            entries = {str(e.tag): e.id for e in recorded}
            counters.flush(conn)
        else:
            counters.flush(conn)
            reviews.queue_manifests(
                conn,
                image.workspace_id,
                [r.manifest_id for r in rows],
                now + timing.review_delay,
                reviews.TAG_DELETE,
            )
        label = image_label(conn, image)
        for r in rows:
            detail: dict[str, Any] = {"digest": r.digest}
            if r.name in entries:
                detail["trash_entry"] = entries[r.name]
            if how != trash_records.TAG_DELETE:
                detail["how"] = how
            _audit(conn, image.workspace_id, actor, "tag.delete", f"{label}:{r.name}", detail, now)
        # Before the trash event: a follower that drops the tags and then adds them to
        # its recently deleted list sees them go and arrive in that order.
        change.events.insert(
            0,
            {
                "type": "tag_deleted",
                "image_id": image.id,
                "repository_id": image.repository_id,
                "tags": [r.name for r in rows],
                "actor": actor,
            },
        )
    return [r.name for r in rows], [n for n in wanted if n not in found], change


def _parent_index(conn: Connection, manifest_id: int, *, hidden: bool) -> str | None:
    """The digest of an index listing the manifest: a visible one, or (``hidden``) one
    deleted by digest into the trash."""
    m = s.manifests.c
    return conn.execute(
        select(m.digest)
        .join(s.manifest_children, s.manifest_children.c.parent_id == m.id)
        .where(
            s.manifest_children.c.child_id == manifest_id,
            m.trashed_at.is_not(None) if hidden else m.trashed_at.is_(None),
        )
        .order_by(m.digest)
        .limit(1)
    ).scalar()


def delete_manifest(
    conn: Connection, image: Image, digest: str, timing: Timing, now: int, actor: str | None
) -> Change:
    """DELETE by digest: the manifest and every tag on it go at once. With the trash
    on, the manifest stays hidden (404 by digest) while its entries hold it."""
    change = Change()
    lock_image(conn, image)
    m = conn.execute(
        select(s.manifests.c.id, s.manifests.c.config_blob_id, s.manifests.c.total_size)
        .where(
            s.manifests.c.image_id == image.id,
            s.manifests.c.digest == digest,
            s.manifests.c.trashed_at.is_(None),
        )
        .with_for_update()
    ).first()
    if m is None:
        raise ManifestUnknown(
            f"manifest {digest} is not known to this image", detail={"digest": digest}
        )
    parent = _parent_index(conn, m.id, hidden=False)
    if parent is not None:
        raise Conflict(
            f"manifest {digest} is referenced by index {parent}; delete the index first",
            detail={"index": parent},
        )
    if not timing.trash_on:
        trashed_parent = _parent_index(conn, m.id, hidden=True)
        if trashed_parent is not None:
            raise Conflict(
                f"manifest {digest} is referenced by index {trashed_parent}, which is in the "
                "trash; empty that trash entry first",
                detail={"index": trashed_parent},
            )
    t = s.tags.c
    tag_rows = conn.execute(
        select(t.name, t.pushed_at).where(t.manifest_id == m.id).order_by(t.name)
    ).all()
    tag_names = [str(r.name) for r in tag_rows]
    detail: dict[str, Any] = {"tags": tag_names}
    trashed: list[dict[str, Any]] = []  # its trash event, after the delete's own
    if timing.trash_on:
        counters = usage.BlobCounters()
        conn.execute(delete(s.tags).where(t.manifest_id == m.id))
        deleted = [
            trash_records.Deleted(
                int(m.id), digest, int(m.total_size), str(r.name), pushed_at=int(r.pushed_at)
            )
            for r in tag_rows
        ] or [trash_records.Deleted(int(m.id), digest, int(m.total_size), None)]
        # The trash holds it before the tags let go: what it reaches never drops to
        # unheld in between (both within this transaction anyway).
        recorded = trash_records.record(
            conn,
            image.workspace_id,
            image.repository_id,
            image.id,
            deleted,
            action=trash_records.MANIFEST_DELETE,
            actor=actor,
            now=now,
            retention_ms=timing.trash_retention,
            counters=counters,
            events=trashed,
        )
        usage.hold(conn, {int(m.id): -len(tag_rows)}, counters=counters)
        usage.hide(conn, int(m.id), now, counters)
        counters.flush(conn)
        detail["trash_entries"] = [e.id for e in recorded]
    else:
        held = gc_review.holdings(conn, m.id, m.config_blob_id)
        # Entries made while the trash was on may name it: a delete by digest is final.
        gone = _drop_entries_of_manifest(conn, int(m.id))
        # It stops holding its children and referrers (and its blobs) as it goes.
        counters = usage.BlobCounters()
        usage.release(conn, m.id, counters=counters)
        usage.release(conn, m.id, usage.TRASH, counters=counters)
        counters.flush(conn)
        conn.execute(delete(s.tags).where(t.manifest_id == m.id))
        conn.execute(delete(s.manifest_children).where(s.manifest_children.c.parent_id == m.id))
        conn.execute(delete(s.manifests).where(s.manifests.c.id == m.id))
        due = now + timing.review_delay
        reviews.queue_blobs(conn, image.workspace_id, held.blobs, due, reviews.MANIFEST_DELETE)
        reviews.queue_manifests(conn, image.workspace_id, held.children, due, reviews.INDEX_DELETE)
        reviews.queue_manifests(
            conn, image.workspace_id, held.referrers, due, reviews.MANIFEST_DELETE
        )
        if gone:
            detail["trash_entries_emptied"] = gone
    _count_tags(conn, image, -len(tag_names))
    _audit(
        conn,
        image.workspace_id,
        actor,
        "manifest.delete",
        f"{image_label(conn, image)}@{digest}",
        detail,
        now,
    )
    change.events.append(
        {
            "type": "manifest_deleted",
            "image_id": image.id,
            "repository_id": image.repository_id,
            "digest": digest,
            "tags": tag_names,
            "actor": actor,
        }
    )
    change.events.extend(trashed)
    return change


def _drop_entries_of_manifest(conn: Connection, manifest_id: int) -> list[int]:
    """Remove the trash entries naming a manifest that goes for good (their holds go
    with the manifest's own release)."""
    e = s.trash_entries.c
    ids = list(
        conn.execute(
            select(e.id).where(e.manifest_id == manifest_id).order_by(e.id).with_for_update()
        ).scalars()
    )
    if ids:
        conn.execute(delete(s.trash_entries).where(e.id.in_(ids)))
    return ids


def delete_image(
    conn: Connection, image: Image, timing: Timing, now: int, actor: str | None
) -> Change:
    """Delete an image with all its tags and manifests. With the trash on it goes
    there whole (row, id, tags, manifests, blob links kept, invisible); otherwise its
    rows go now and its blobs are queued for review (:func:`purge_image`)."""
    if not timing.trash_on:
        return purge_image(conn, image, timing, now, actor)
    change = Change()
    label = image_label(conn, image)
    lock_image(conn, image)
    counters = usage.BlobCounters()
    trashed: list[dict[str, Any]] = []  # its trash event, after the delete's own
    entry = trash_records.record_image(
        conn,
        image.workspace_id,
        image.repository_id,
        image.id,
        actor=actor,
        now=now,
        retention_ms=timing.trash_retention,
        counters=counters,
        events=trashed,
    )
    counters.flush(conn)
    tag_count = conn.execute(
        select(s.trash_entries.c.tag_count).where(s.trash_entries.c.id == entry.id)
    ).scalar_one()
    # Uploads into it end: a restore brings back what was pushed, not half a push.
    change.ended_uploads = uploads.sessions_of_image(conn, image.id)
    conn.execute(delete(s.upload_sessions).where(s.upload_sessions.c.image_id == image.id))
    manifest_count = conn.execute(
        select(func.count()).select_from(s.manifests).where(s.manifests.c.image_id == image.id)
    ).scalar()
    detail = {"tags": tag_count, "manifests": manifest_count, "trash_entry": entry.id}
    _audit(conn, image.workspace_id, actor, "image.delete", label, detail, now)
    change.events.append(_image_deleted(image, label, actor))
    change.events.extend(trashed)
    return change


def _image_deleted(image: Image, label: str, actor: str | None) -> dict[str, Any]:
    return {
        "type": "image_deleted",
        "image_id": image.id,
        "repository_id": image.repository_id,
        "name": label,
        "actor": actor,
    }


def purge_image(
    conn: Connection,
    image: Image,
    timing: Timing,
    now: int,
    actor: str | None,
    *,
    event: str = reviews.IMAGE_DELETE,
    audit: bool = True,
) -> Change:
    """Remove an image with all its tags and manifests for good (a delete with the
    trash off, or its trash entry expiring or emptied); its blobs are queued for
    review under ``event``. Any trash entries of the image go with it.

    All of an image's manifests go at once: every index child and every referrer of
    them lives in the same image, so none of them can stay alive without the others.
    """
    change = Change()
    label = image_label(conn, image)
    conn.execute(select(s.images.c.id).where(s.images.c.id == image.id).with_for_update()).first()
    # Manifest rows before their layer and queue rows, in digest order, as the GC
    # locks them (PostgreSQL): otherwise the two can deadlock on a manifest's rows.
    conn.execute(
        select(s.manifests.c.id)
        .where(s.manifests.c.image_id == image.id)
        .order_by(s.manifests.c.digest)
        .with_for_update()
    ).all()
    tag_count = conn.execute(
        select(func.count()).select_from(s.tags).where(s.tags.c.image_id == image.id)
    ).scalar()
    manifest_ids = select(s.manifests.c.id).where(s.manifests.c.image_id == image.id)
    blob_ids = set(
        conn.execute(
            select(s.manifest_layers.c.blob_id).where(
                s.manifest_layers.c.manifest_id.in_(manifest_ids)
            )
        ).scalars()
    )
    blob_ids |= set(
        conn.execute(
            select(s.manifests.c.config_blob_id).where(
                s.manifests.c.image_id == image.id, s.manifests.c.config_blob_id.is_not(None)
            )
        ).scalars()
    )
    blob_ids |= set(
        conn.execute(
            select(s.image_blobs.c.blob_id).where(s.image_blobs.c.image_id == image.id)
        ).scalars()
    )
    manifest_count = conn.execute(
        select(func.count()).select_from(s.manifests).where(s.manifests.c.image_id == image.id)
    ).scalar()
    entries = list(
        conn.execute(
            select(s.trash_entries.c.id).where(s.trash_entries.c.image_id == image.id)
        ).scalars()
    )
    if entries:
        conn.execute(delete(s.trash_entries).where(s.trash_entries.c.image_id == image.id))
    conn.execute(delete(s.tags).where(s.tags.c.image_id == image.id))
    conn.execute(
        delete(s.manifest_children).where(s.manifest_children.c.parent_id.in_(manifest_ids))
    )
    conn.execute(delete(s.manifest_layers).where(s.manifest_layers.c.manifest_id.in_(manifest_ids)))
    conn.execute(
        delete(s.gc_manifest_reviews).where(s.gc_manifest_reviews.c.manifest_id.in_(manifest_ids))
    )
    conn.execute(delete(s.manifests).where(s.manifests.c.image_id == image.id))
    usage.drop_image(conn, image.id)
    conn.execute(delete(s.image_blobs).where(s.image_blobs.c.image_id == image.id))
    change.ended_uploads = uploads.sessions_of_image(conn, image.id)
    conn.execute(delete(s.upload_sessions).where(s.upload_sessions.c.image_id == image.id))
    conn.execute(delete(s.images).where(s.images.c.id == image.id))
    reviews.queue_blobs(conn, image.workspace_id, blob_ids, now + timing.review_delay, event)
    if audit:
        detail: dict[str, Any] = {"tags": tag_count, "manifests": manifest_count}
        if entries:
            detail["trash_entries_emptied"] = entries
        _audit(conn, image.workspace_id, actor, "image.delete", label, detail, now)
        change.events.append(_image_deleted(image, label, actor))
    return change


def tags_list_query(image_id: int, n: int | None, last: str | None) -> Select[str]:
    """Tags in the distribution spec's order ("lexical, i.e. case-insensitive
    alphanumeric"), ties broken by the exact name so the order is total and ``last``
    resumes precisely. Tags are ASCII, so lower() folds them the same on both dialects;
    the order is that of ``ix_tags_image_lower_name`` (tag names compare as bytes).
    """
    name = s.tags.c.name
    key = tuple_(func.lower(name), name)
    q = select(name).where(s.tags.c.image_id == image_id).order_by(*key.clauses)
    if last is not None:
        # The first condition is implied by the second; it is there because SQLite
        # ranges an expression index only on a plain comparison, not a row value.
        lowered = last.lower()
        q = q.where(func.lower(name) >= lowered, key > tuple_(literal(lowered), literal(last)))
    if n is not None:
        q = q.limit(n)
    return q


def list_tags(conn: Connection, image: Image, n: int | None, last: str | None) -> list[str]:
    return list(conn.execute(tags_list_query(image.id, n, last)).scalars())


def referrers(
    conn: Connection, image: Image, digest: str, artifact_type: str | None
) -> list[dict[str, Any]]:
    q = select(
        s.manifests.c.digest,
        s.manifests.c.media_type,
        s.manifests.c.artifact_type,
        func.length(s.manifests.c.payload).label("size"),
        s.manifests.c.annotations,
    ).where(
        s.manifests.c.image_id == image.id,
        s.manifests.c.subject_digest == digest,
        s.manifests.c.trashed_at.is_(None),
    )
    if artifact_type is not None:
        q = q.where(s.manifests.c.artifact_type == artifact_type)
    out = []
    for row in conn.execute(q.order_by(s.manifests.c.digest)):
        desc: dict[str, Any] = {
            "mediaType": row.media_type,
            "digest": row.digest,
            "size": int(row.size),
        }
        if row.artifact_type:
            desc["artifactType"] = row.artifact_type
        if row.annotations:
            desc["annotations"] = json.loads(row.annotations)
        out.append(desc)
    return out
