"""Rows of the trash: what a delete writes when the trash is on, and the holds that
come with them (DESIGN.md §1, "Recently deleted").

Every deletion path ends here, inside its own write transaction and after it has
taken its image's turn (``content.lock_image``): a tag delete (OCI, API, bulk, a
cleanup policy run), a manifest delete by digest (an entry per tag on it, or one for
the manifest itself when it had none), a tag moved by a push (the digest it left),
an image delete (one entry for the image; its tags stay in ``tags``).

An entry that names a manifest is a root of the trash kind of holders
(``usage.TRASH``): +1 on its manifest, carried through the graph like a tag's hold,
so the manifest and everything it reaches are held -- GC never frees them -- and
their bytes count as *in trash* rather than pending. An image entry moves the holds
of the image's tags from the tag kind to the trash kind. Restores, expiry and
"empty" (app.registry.trash) take the holds back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from app.registry.db import schema as s
from app.registry.gc import usage

# How each entry came to be (``trash_entries.action``).
TAG_DELETE = "tag.delete"
MANIFEST_DELETE = "manifest.delete"
IMAGE_DELETE = "image.delete"
TAG_MOVE = "tag.move"  # a push moved the tag to another digest: restore = roll back
POLICY_RUN = "policy.run"
ROLLBACK = "tag.rollback"  # a restore moved the tag back: the digest it left

KIND_TAG = "tag"
KIND_MANIFEST = "manifest"
KIND_IMAGE = "image"

WEEK_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Deleted:
    """A tag (or, with ``tag`` None, a manifest deleted by digest) going to the trash."""

    manifest_id: int
    digest: str
    size: int
    tag: str | None
    pushed_at: int | None = None
    replaced_by: str | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """An entry just written, for the ``trashed`` event."""

    id: int
    kind: str
    tag: str | None
    digest: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "tag": self.tag, "digest": self.digest}


def _insert(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    e = s.trash_entries.c
    result = conn.execute(
        insert(s.trash_entries).returning(e.id, sort_by_parameter_order=True), rows
    )
    return [int(r[0]) for r in result]


def record(
    conn: Connection,
    workspace_id: int,
    repository_id: int,
    image_id: int,
    deleted: Sequence[Deleted],
    *,
    action: str,
    actor: str | None,
    now: int,
    retention_ms: int,
    counters: usage.BlobCounters,
    events: list[dict[str, Any]],
) -> list[Recorded]:
    """Write an entry per deleted tag or manifest and hold what each names; the
    ``trashed`` event goes to ``events``. The caller has taken the image's turn and
    removed the tags already."""
    if not deleted:
        return []
    rows = [
        {
            "workspace_id": workspace_id,
            "repository_id": repository_id,
            "image_id": image_id,
            "kind": KIND_TAG if d.tag is not None else KIND_MANIFEST,
            "tag": d.tag,
            "manifest_id": d.manifest_id,
            "digest": d.digest,
            "replaced_by": d.replaced_by,
            "pushed_at": d.pushed_at,
            "size": d.size,
            "tag_count": 1 if d.tag is not None else 0,
            "action": action,
            "deleted_by": actor,
            "deleted_at": now,
            "expires_at": now + retention_ms,
        }
        for d in deleted
    ]
    ids = _insert(conn, rows)
    holds: dict[int, int] = defaultdict(int)
    for d in deleted:
        holds[d.manifest_id] += 1
    usage.hold(conn, holds, usage.TRASH, counters=counters)
    recorded = [
        Recorded(i, str(r["kind"]), d.tag, d.digest)
        for i, r, d in zip(ids, rows, deleted, strict=True)
    ]
    events.append(
        trashed_event(
            image_id,
            repository_id,
            recorded,
            action=action,
            actor=actor,
            expires_at=now + retention_ms,
        )
    )
    return recorded


def image_tag_roots(conn: Connection, image_id: int) -> dict[int, int]:
    """Per manifest, how many of the image's tags are on it."""
    t = s.tags.c
    return {
        int(mid): int(n)
        for mid, n in conn.execute(
            select(t.manifest_id, func.count())
            .where(t.image_id == image_id)
            .group_by(t.manifest_id)
        )
    }


def image_size(conn: Connection, image_id: int) -> int:
    """Bytes of the distinct blobs the image's tags reach (its listed size)."""
    u, b = s.blob_usage.c, s.blobs.c
    return int(
        conn.execute(
            select(func.coalesce(func.sum(b.size), 0))
            .select_from(s.blob_usage)
            .join(s.blobs, b.id == u.blob_id)
            .where(u.image_id == image_id)
        ).scalar_one()
    )


def record_image(
    conn: Connection,
    workspace_id: int,
    repository_id: int,
    image_id: int,
    *,
    actor: str | None,
    now: int,
    retention_ms: int,
    counters: usage.BlobCounters,
    events: list[dict[str, Any]],
) -> Recorded:
    """Put a whole image in the trash: its row is marked, its tags (which stay in
    place, for the restore) hold their manifests for the trash instead of as tags."""
    size = image_size(conn, image_id)
    roots = image_tag_roots(conn, image_id)
    tag_count = sum(roots.values())
    usage.hold(conn, {m: -n for m, n in roots.items()}, usage.TAGS, counters=counters)
    conn.execute(update(s.images).where(s.images.c.id == image_id).values(trashed_at=now))
    usage.hold(conn, roots, usage.TRASH, counters=counters)
    (entry_id,) = _insert(
        conn,
        [
            {
                "workspace_id": workspace_id,
                "repository_id": repository_id,
                "image_id": image_id,
                "kind": KIND_IMAGE,
                "tag": None,
                "manifest_id": None,
                "digest": None,
                "replaced_by": None,
                "pushed_at": None,
                "size": size,
                "tag_count": tag_count,
                "action": IMAGE_DELETE,
                "deleted_by": actor,
                "deleted_at": now,
                "expires_at": now + retention_ms,
            }
        ],
    )
    recorded = Recorded(entry_id, KIND_IMAGE, None, None)
    events.append(
        trashed_event(
            image_id,
            repository_id,
            [recorded],
            action=IMAGE_DELETE,
            actor=actor,
            expires_at=now + retention_ms,
        )
    )
    return recorded


def trashed_event(
    image_id: int,
    repository_id: int,
    recorded: Sequence[Recorded],
    *,
    action: str,
    actor: str | None,
    expires_at: int,
) -> dict[str, Any]:
    return {
        "type": "trashed",
        "image_id": image_id,
        "repository_id": repository_id,
        "action": action,
        "entries": [r.as_dict() for r in recorded],
        "expires_at": expires_at,
        "actor": actor,
    }
