"""Columns of the tags table.

Tag names sort in natural order, digits as numbers (1.14.2 before 1.14.10, v9
before v10): tags are mostly versions. The registry pages them in the distribution
spec's lexical order (ascending or descending as asked), and the table sorts the
rows it has naturally as pages arrive: exact once every tag is loaded (an image
with fewer tags than a page, or after scrolling to the end), close before.
"""

from __future__ import annotations

import re
from functools import lru_cache

from app.client.berth_api import Tag
from app.core.mediatypes import is_index
from app.ui.common.formatting import (
    NEVER,
    exact_bytes,
    known_bytes,
    long_time,
    relative_time,
    short_digest,
)
from app.ui.common.table_model import Column, PagedTableModel, Runner

TAG, DIGEST, SIZE, PLATFORMS, CREATED, PUSHED, LAST_PULL, OTHER_TAGS = range(8)
_DIGITS = re.compile(r"(\d+)")


@lru_cache(maxsize=1 << 18)  # a sort of 100,000 rows splits each name once
def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Text runs compared without case, digit runs as numbers; ties (v01, v1) by the
    exact name. Split on digits, text and numbers alternate, so parts at the same
    position are always of the same type."""
    parts = _DIGITS.split(name)
    key = tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts))
    return key, name


def _platforms(tag: Tag) -> str:
    # "linux/amd64" → "amd64": the OS is nearly always linux and the column is narrow.
    return ", ".join(p.split("/", 1)[1] if p.startswith("linux/") else p for p in tag.platforms)


def _pull_tip(tag: Tag) -> str | None:
    # A pull by digest (or by another tag of the digest) is not this tag's: say both.
    parts = []
    if tag.last_pulled is not None:
        parts.append(f"Pulled by this tag {long_time(tag.last_pulled)}")
    else:
        parts.append("Not pulled by this tag since pulls are tracked")
    if tag.digest_last_pulled is not None and tag.digest_last_pulled != tag.last_pulled:
        parts.append(f"its digest last pulled {long_time(tag.digest_last_pulled)}")
    return "; ".join(parts)


def _other(tag: Tag) -> str:
    text = ", ".join(tag.other_tags)
    hidden = tag.other_tag_count - len(tag.other_tags)
    return f"{text} (+{hidden} more)" if hidden > 0 else text


COLUMNS: list[Column[Tag]] = [
    Column(
        "Tag",
        lambda t: t.name,
        lambda t: natural_key(t.name),
        server_sort="name",
        sort_here_too=True,
        description="Tag name (sorted as versions: 1.2 before 1.10)",
    ),
    Column(
        "Digest",
        lambda t: short_digest(t.digest),
        lambda t: t.digest,
        lambda t: t.digest,
        description="Manifest digest (the full digest is in the tooltip)",
    ),
    Column(
        "Size",
        lambda t: known_bytes(t.size),
        lambda t: t.size,
        lambda t: exact_bytes(t.size) if t.size >= 0 else "Reading the manifest…",
        numeric=True,
        server_sort="size",
        description="Bytes of the manifest, its config and layers",
    ),
    Column(
        "Platforms",
        _platforms,
        # Sort keys stay cheap (100,000 rows): the tuple as it came, no strings built.
        lambda t: t.platforms,
        lambda t: ("Index: " if is_index(t.media_type) else "") + ", ".join(t.platforms),
        description="Platforms of the image or index",
    ),
    Column(
        "Created",
        lambda t: relative_time(t.created),
        lambda t: t.created or NEVER,
        lambda t: long_time(t.created),
        server_sort="created",
        description="When the image was built (from its config)",
    ),
    Column(
        "Pushed",
        lambda t: relative_time(t.pushed_at),
        lambda t: t.pushed_at or NEVER,
        lambda t: long_time(t.pushed_at),
        server_sort="pushed_at",
        description="When the tag was last pushed",
    ),
    Column(
        "Last pull",
        lambda t: relative_time(t.last_pulled),
        lambda t: t.last_pulled or NEVER,
        _pull_tip,
        description="When the tag was last pulled (a manifest GET or HEAD by this tag)",
    ),
    Column(
        "Other tags",
        _other,
        lambda t: t.other_tag_count,  # how many (ties keep their order: stable sort)
        lambda t: (
            f"Also tagged {_other(t)}: deleting this tag keeps those" if t.other_tags else None
        ),
        description="Other tags on the same digest (they stay when this tag is deleted)",
    ),
]


class TagsModel(PagedTableModel[Tag]):
    def __init__(self, runner: Runner | None = None) -> None:
        super().__init__(
            COLUMNS, key=lambda t: t.name, search_text=lambda t: t.name, runner=runner, name="tags"
        )
