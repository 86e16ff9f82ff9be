"""Storage figures of a workspace, from the blob rows and the derived usage graph.

``blobs.image_refs`` counts the images that reach a blob from their tags (see
app.registry.usage), so the headline figures are one pass over the blob rows:

* stored: bytes of every blob held
* referenced: blobs reachable from some tag
* shared: blobs reachable from two or more images
* pending: held but unreferenced (GC will review and free them)
* logical: as if every image stored its own copy (sum of size x image_refs)
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, case, func, select

from app.registry.db import schema as s


@dataclass(frozen=True, slots=True)
class Totals:
    stored: int
    referenced: int
    shared: int
    pending: int
    logical: int
    blob_count: int

    @property
    def saving(self) -> int:
        return self.logical - self.referenced


def totals(conn: Connection, workspace_id: int) -> Totals:
    b = s.blobs.c
    row = conn.execute(
        select(
            func.coalesce(func.sum(b.size), 0),
            func.coalesce(func.sum(case((b.image_refs > 0, b.size), else_=0)), 0),
            func.coalesce(func.sum(case((b.image_refs > 1, b.size), else_=0)), 0),
            func.coalesce(func.sum(b.size * b.image_refs), 0),
            func.count(),
        ).where(b.workspace_id == workspace_id)
    ).one()
    stored, referenced, shared, logical, count = (int(v) for v in row)
    return Totals(stored, referenced, shared, stored - referenced, logical, count)
