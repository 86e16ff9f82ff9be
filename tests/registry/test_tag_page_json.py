"""Tag pages written straight from their rows are, byte for byte, what pydantic writes
for the same page built as ``Page[TagItem]`` the way the route built it before
(a ``TagItem`` per row from the same columns): unicode and escaped names, null
times and configs, no platforms, many platforms, other tags beyond those shown."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.registry.api.models import TagItem
from app.registry.api.paging import Page
from app.registry.api.tag_page_json import OTHER_TAGS_SHOWN, OtherTags, page_json
from app.registry.api.times import iso, normalized

Row = tuple[Any, ...]  # in ROW_FIELDS order


def reference(rows: Sequence[Row], others: OtherTags, cursor: str | None, total: int) -> bytes:
    items = []
    for (
        name,
        pushed_at,
        manifest_id,
        _holders,
        digest,
        media_type,
        size,
        platforms,
        created,
        last_pulled,
        digest_last_pulled,
        *_,
    ) in rows:
        names, count = others.get(manifest_id, ([], 1))
        items.append(
            TagItem(
                name=name,
                digest=digest,
                media_type=media_type,
                size=size,
                platforms=platforms.split(",") if platforms else [],
                created=normalized(created),
                pushed_at=iso(pushed_at),
                other_tags=[n for n in names if n != name][:OTHER_TAGS_SHOWN],
                other_tag_count=max(count - 1, 0),
                last_pulled=iso(last_pulled) if last_pulled is not None else None,
                digest_last_pulled=(
                    iso(digest_last_pulled) if digest_last_pulled is not None else None
                ),
            )
        )
    page = Page[TagItem](items=items, next_cursor=cursor, total=total)
    return page.model_dump_json().encode()


D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
IMAGE = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
T0 = 1_796_543_945_299


def test_examples() -> None:
    many = sorted(f"v{i:03d}" for i in range(45))
    rows: list[Row] = [
        # a tag per build: one platform, no pulls
        ("build-000001", T0, 1, 1, D1, IMAGE, 4950, "linux/amd64", "2026-01-01T00:00:00Z",
         None, None),
        # unicode, quotes, backslashes and control characters, as names and types
        ("tág-✓-标签-🐳", T0 + 1, 2, 1, D2, 'ty"pe\\/\x00\x1f\x7f\u2028', 0, None, None,
         T0 + 5, T0 + 6),
        ('a"b\\c\n\t\r\b\f', -1, 3, 2, D1, IMAGE, 1, "", "not a time", None, T0),
        # a multi-platform index with nanoseconds in its config time, and other tags
        ("multi", 0, 4, 3, D2, INDEX, 2**53, "linux/amd64,linux/arm64/v8,windows/amd64",
         "2026-03-01T10:00:00.123456789+02:00", T0, None),
        ("latest", T0, 4, 3, D2, INDEX, 2**53, "linux/amd64,linux/arm64/v8,windows/amd64",
         "2026-03-01T10:00:00.123456789+02:00", None, None),
        # a manifest with more tags than shown: the row's own name is left out
        ("v001", T0, 5, 45, D1, IMAGE, 7, "linux/amd64", None, None, None),
        # held by an index, its only tag: no other tags
        ("child", T0, 6, 2, D1, IMAGE, 7, "linux/amd64", "", None, None),
        # extra columns after ROW_FIELDS (the cursor's sort key and id) are not read
        ("sorted", T0, 1, 1, D1, IMAGE, 4950, "linux/amd64", None, None, None, 4950, 17),
    ]  # fmt: skip
    others: OtherTags = {
        3: (['a"b\\c\n\t\r\b\f', "ünïcödé"], 2),
        4: (["latest", "multi", "stable"], 3),
        5: (many[: OTHER_TAGS_SHOWN + 1], 45),
        6: ([], 1),
    }
    for cursor in (None, "WyJuYW1lIiwiYnVpbGQtMDAwOTk5Il0"):
        got = page_json(rows, others, cursor, 100_000)
        assert got == reference(rows, others, cursor, 100_000)
    assert page_json([], {}, None, 0) == b'{"items":[],"next_cursor":null,"total":0}'


# Config times as images carry them (often with nanoseconds or an offset), and text.
times = st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999)
configs = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.datetimes(min_value=datetime(1971, 1, 1)).map(lambda d: d.isoformat() + ".123456789Z"),
)
rows_ = st.tuples(
    st.text(min_size=1, max_size=20),
    times,
    st.integers(min_value=1, max_value=6),  # few manifests: rows share them
    st.integers(min_value=1, max_value=4),
    st.text(max_size=80),
    st.text(max_size=60),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.one_of(st.none(), st.text(max_size=40)),
    configs,
    st.one_of(st.none(), times),
    st.one_of(st.none(), times),
)


@given(
    st.lists(rows_, max_size=12),
    st.dictionaries(
        st.integers(min_value=1, max_value=6),
        st.tuples(st.lists(st.text(max_size=10), max_size=25), st.integers(1, 10**6)),
    ),
    st.one_of(st.none(), st.text()),
    st.integers(min_value=0, max_value=2**63 - 1),
)
def test_same_as_the_model(
    rows: list[Row], others: dict[int, tuple[list[str], int]], cursor: str | None, total: int
) -> None:
    # Other tags are only ever looked up for manifests with another holder.
    rows = [r if r[2] not in others else (*r[:3], max(r[3], 2), *r[4:]) for r in rows]
    assert page_json(rows, others, cursor, total) == reference(rows, others, cursor, total)
