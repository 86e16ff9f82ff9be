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
        for mid in sorted(set(manifest_ids))
    ]
    _upsert(conn, s.gc_manifest_reviews, "manifest_id", rows)


def queue_blobs(
    conn: Connection, workspace_id: int, blob_ids: Iterable[int], review_after: int, event: str
) -> None:
    ids = sorted(set(blob_ids))
    if not ids:
        return
    if conn.dialect.name == "postgresql":
        # Another worker may have collected one of these blobs and committed since this
        # transaction read them (seen: a manifest review queueing what the manifest held
        # while a blob review elsewhere deleted one of them, in the trash stress). A
        # review of a blob that is gone is moot, and the queue row's foreign key would
        # fail the whole transaction: key-share lock the rows that are still there (a
        # delete now waits for this commit) and queue those. SQLite runs one writer.
        b = s.blobs.c
        ids = list(
            conn.execute(
                select(b.id).where(b.id.in_(ids)).order_by(b.id).with_for_update(key_share=True)
            ).scalars()
        )
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
