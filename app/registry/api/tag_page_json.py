"""A tag page's JSON body written straight from its SQL rows.

The rows of ``GET /images/{id}/tags`` are ``TagItem``s; a page of 1,000 of them
built as a dict per row and serialized by pydantic was a third of the route's CPU
(py-spy, issue 12). Here each row becomes its text in one f-string, with the parts
that repeat on a page (platforms, created) formatted once per distinct value.
``tests/registry/test_tag_page_json.py`` holds it to ``Page[TagItem]``'s own
serialization, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from json.encoder import encode_basestring  # C; the escapes pydantic's encoder makes
from typing import Any

from app.registry.api.times import iso, normalized

OTHER_TAGS_SHOWN = 20

# What each row carries, in this order (the route selects these columns first; any
# more after them, such as a sort key for the cursor, are not read here).
ROW_FIELDS = (
    "name",
    "pushed_at",  # ms
    "manifest_id",
    "holders",  # the manifest's: more than 1, it may have other tags
    "digest",
    "media_type",
    "size",
    "platforms",  # comma-separated, or None
    "created",  # the config's text, normalized here
    "last_pulled",  # ms or None
    "digest_last_pulled",  # ms or None
)

# Per manifest: its first tag names (sorted, one more than shown) and its tag count.
OtherTags = Mapping[int, tuple[Sequence[str], int]]


def _string_list(values: Iterable[str]) -> str:
    return "[" + ",".join(map(encode_basestring, values)) + "]"


def _platforms(text: str | None) -> str:
    return _string_list(text.split(",")) if text else "[]"


def _created(text: str | None) -> str:
    shown = normalized(text)
    return "null" if shown is None else f'"{shown}"'


def page_json(
    rows: Iterable[Sequence[Any]], others: OtherTags, next_cursor: str | None, total: int
) -> bytes:
    """``Page[TagItem]`` as JSON: ``rows`` in :data:`ROW_FIELDS` order."""
    quote = encode_basestring
    platforms: dict[str | None, str] = {}
    created: dict[str | None, str] = {}
    parts = []
    for (
        name,
        pushed_at,
        manifest_id,
        holders,
        digest,
        media_type,
        size,
        platforms_text,
        created_text,
        last_pulled,
        digest_last_pulled,
        *_,
    ) in rows:
        shown_platforms = platforms.get(platforms_text)
        if shown_platforms is None:
            shown_platforms = platforms[platforms_text] = _platforms(platforms_text)
        shown_created = created.get(created_text)
        if shown_created is None:
            shown_created = created[created_text] = _created(created_text)
        if holders > 1 and manifest_id in others:
            names, count = others[manifest_id]
            other_names = _string_list([n for n in names if n != name][:OTHER_TAGS_SHOWN])
            other_count = max(count - 1, 0)
        else:  # a tag per build: this row's tag is its manifest's only one
            other_names, other_count = "[]", 0
        # Pulls are rare beside pushes: most rows have neither time.
        pulled = "null" if last_pulled is None else f'"{iso(last_pulled)}"'
        digest_pulled = "null" if digest_last_pulled is None else f'"{iso(digest_last_pulled)}"'
        parts.append(
            f'{{"name":{quote(name)},"digest":{quote(digest)},'
            f'"media_type":{quote(media_type)},"size":{size},'
            f'"platforms":{shown_platforms},"created":{shown_created},'
            f'"pushed_at":"{iso(pushed_at)}","other_tags":{other_names},'
            f'"other_tag_count":{other_count},"last_pulled":{pulled},'
            f'"digest_last_pulled":{digest_pulled}}}'
        )
    cursor = "null" if next_cursor is None else quote(next_cursor)
    return f'{{"items":[{",".join(parts)}],"next_cursor":{cursor},"total":{total}}}'.encode()
