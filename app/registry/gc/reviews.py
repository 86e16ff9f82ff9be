"""Queueing GC reviews, in the same transaction as the event that calls for them.

Each queue holds at most one row per item; queueing again is an upsert that moves
``review_after`` forward and never back, so a review is never dropped or advanced
(DESIGN.md, race safety rule 1).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from sqlalchemy import Connection, Insert, Table, case, select
from sqlalchemy.dialects import postgresql, sqlite

from app.registry.db import schema as s

# Events that queue reviews (recorded as the trigger of the GC run that handles them).
TAG_REPUSH = "tag_repush"
TAG_DELETE = "tag_delete"
IMAGE_DELETE = "image_delete"
MANIFEST_BY_DIGEST = "manifest_by_digest"
MANIFEST_DELETE = "manifest_delete"
INDEX_DELETE = "index_delete"
BLOB_UPLOAD = "blob_upload"
BLOB_UNLINK = "blob_unlink"
# What a trash entry held, once it expires or is emptied (app.registry.trash).
TRASH_EXPIRE = "trash_expire"
TRASH_EMPTY = "trash_empty"
# A manifest restored from the trash without a tag: collected like a push by digest.
TRASH_RESTORE = "trash_restore"


@functools.cache
def _upsert_statement(dialect: str, table: Table, key: str) -> Insert:
    """One statement per dialect and queue, built once: executed with a list of
    rows (executemany) it stays in SQLAlchemy's statement cache, where a multi-row
    VALUES clause would compile anew for every row count."""
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    # Move review_after forward only; the event that moved it is the one recorded.
    later = stmt.excluded.review_after > table.c.review_after
    return stmt.on_conflict_do_update(
        index_elements=[table.c[key]],
        set_={
            "review_after": case((later, stmt.excluded.review_after), else_=table.c.review_after),
            "event": case((later, stmt.excluded.event), else_=table.c.event),
        },
    )


def _still_there(conn: Connection, table: Table, ids: Iterable[int]) -> list[int]:
    """``ids`` in order, without those of rows another worker removed meanwhile.

    On PostgreSQL another node's GC may have collected one of them and committed since
    this transaction read them (seen: a manifest review queueing what a deleted
    manifest held while a blob review elsewhere deleted one of those blobs, in the
    trash stress; an integrity error answered 500 to an image delete in the cluster
    stress, most likely the same). A review of a row that is gone is moot, and the
    queue row's foreign key would fail the whole transaction: key-share lock the rows
    still there, in id order (the foreign key checks took the same locks, one by one),
    so a delete waits for this commit, and queue those. SQLite runs one writer at a
    time, so nothing is removed meanwhile."""
    wanted = sorted(set(ids))
    if not wanted or conn.dialect.name != "postgresql":
        return wanted
    key = table.c.id
    return list(
        conn.execute(
            select(key).where(key.in_(wanted)).order_by(key).with_for_update(key_share=True)
        ).scalars()
    )


def _upsert(conn: Connection, table: Table, key: str, rows: list[dict[str, object]]) -> None:
    if rows:
        conn.execute(_upsert_statement(conn.dialect.name, table, key), rows)


def queue_manifests(
    conn: Connection, workspace_id: int, manifest_ids: Iterable[int], review_after: int, event: str
) -> None:
    rows: list[dict[str, object]] = [
        {
            "manifest_id": mid,
            "workspace_id": workspace_id,
            "review_after": review_after,
            "event": event,
            "attempts": 0,
        }
        for mid in _still_there(conn, s.manifests, manifest_ids)
    ]
    _upsert(conn, s.gc_manifest_reviews, "manifest_id", rows)


def queue_blobs(
    conn: Connection, workspace_id: int, blob_ids: Iterable[int], review_after: int, event: str
) -> None:
    ids = _still_there(conn, s.blobs, blob_ids)
    rows: list[dict[str, object]] = [
        {
            "blob_id": bid,
            "workspace_id": workspace_id,
            "review_after": review_after,
            "event": event,
            "attempts": 0,
        }
        for bid in ids
    ]
    _upsert(conn, s.gc_blob_reviews, "blob_id", rows)
