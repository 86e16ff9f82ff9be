"""Which blob store a registry's rows describe, recorded in its database.

Nothing else ties the metadata to its blobs. A ``gc`` started without the nodes'
``--blob-store`` would open the data directory instead: it would delete rows and
leave their objects in the bucket (billed, until an ``fsck --repair`` with the right
store), and ``fsck`` would call every blob missing. So the first command that
serves, seeds or maintains a registry records where its blobs are, and a later one
naming another store stops before touching anything. ``init --blob-store`` records
a new place, for blobs that were moved.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from app.registry.blobstore import BlobStore
from app.registry.db import schema as s
from app.registry.db.engine import Database
from app.registry.errors import RegistryError

KEY = "blob_store"


def _named(identity: str) -> str:
    return "a directory (file://)" if identity == "file" else identity


def claim(db: Database, store: BlobStore) -> None:
    """Record ``store`` as the registry's when nothing is recorded yet; raise
    :class:`RegistryError` when another store is."""
    st = s.settings.c
    try:
        with db.write() as conn:
            recorded = conn.execute(select(st.value).where(st.key == KEY)).scalar()
            if recorded is None:
                conn.execute(insert(s.settings).values(key=KEY, value=store.identity))
                return
    except IntegrityError:
        # Another node recorded it at the same moment: compare with theirs.
        with db.read() as conn:
            recorded = conn.execute(select(st.value).where(st.key == KEY)).scalar()
        if recorded is None:  # only `init --blob-store` removes it: try again
            claim(db, store)
            return
    if recorded != store.identity:
        hint = (
            "no --blob-store (its data directory) or --blob-store file:///PATH"
            if recorded == "file"
            else f"--blob-store {recorded}"
        )
        raise RegistryError(
            f"this registry's blobs are in {_named(recorded)}, not in {store.description}: "
            f"run it with {hint} (if the blobs were moved, record their new place with "
            "berth-registry init --blob-store URL)",
            code="INVALID_ARGUMENT",
        )


def record(db: Database, store: BlobStore) -> bool:
    """Record ``store`` as the registry's, replacing what was; whether it changed."""
    st = s.settings.c
    with db.write() as conn:
        recorded = conn.execute(select(st.value).where(st.key == KEY)).scalar()
        if recorded == store.identity:
            return False
        conn.execute(delete(s.settings).where(st.key == KEY))
        conn.execute(insert(s.settings).values(key=KEY, value=store.identity))
        return True
