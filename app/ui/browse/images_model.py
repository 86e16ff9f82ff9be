"""Columns of the images table."""

from __future__ import annotations

from app.client.berth_api import Image
from app.ui.common.formatting import exact_bytes, known_bytes, long_time, relative_time, timestamp
from app.ui.common.table_model import Column, PagedTableModel, Runner

NAME, TAGS, SIZE, EXCLUSIVE, LAST_PUSH, REPOSITORY, PROJECT = range(7)
# A plain OCI registry's sizes come from a storage scan (negative until one ran).
NOT_SCANNED = "Not measured yet: scan the registry's storage (Storage tab)"

COLUMNS: list[Column[Image]] = [
    Column(
        "Name",
        lambda i: i.name,
        lambda i: i.name,
        lambda i: i.full_name,
        server_sort="name",
        description="Image name inside its repository",
    ),
    Column(
        "Tags",
        lambda i: str(i.tag_count) if i.tag_count >= 0 else "…",
        lambda i: i.tag_count,
        numeric=True,
        server_sort="tag_count",
        description="Number of tags",
    ),
    Column(
        "Size",
        lambda i: known_bytes(i.size),
        lambda i: i.size,
        lambda i: (
            f"{exact_bytes(i.size)} in the distinct blobs of its tags"
            if i.size >= 0
            else NOT_SCANNED
        ),
        numeric=True,
        server_sort="size",
        description="Bytes of the distinct blobs its tags reference",
    ),
    Column(
        "Exclusive",
        lambda i: known_bytes(i.exclusive_size),
        lambda i: i.exclusive_size,
        lambda i: (
            f"{exact_bytes(i.exclusive_size)} no other image shares: freed by GC after a delete"
            if i.exclusive_size >= 0
            else NOT_SCANNED
        ),
        numeric=True,
        description="Bytes only this image references (freed by GC if it is deleted)",
    ),
    Column(
        "Last push",
        lambda i: relative_time(i.last_push),
        lambda i: timestamp(i.last_push),
        lambda i: long_time(i.last_push),
        server_sort="last_push",
        description="When a tag of this image was last pushed",
    ),
    Column("Repository", lambda i: i.repository, lambda i: i.repository),
    Column("Project", lambda i: i.project, lambda i: i.project),
]


class ImagesModel(PagedTableModel[Image]):
    def __init__(self, runner: Runner | None = None) -> None:
        super().__init__(
            COLUMNS,
            key=lambda i: i.id,
            search_text=lambda i: i.full_name,
            runner=runner,
            name="images",
        )
