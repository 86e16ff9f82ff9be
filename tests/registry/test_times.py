"""The API's times: ISO 8601 UTC with milliseconds, formatted thousands of times per
page (the second's text is remembered), the same as datetime's own formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.registry.api.times import iso, parse_iso

# Year 1 to 9999, the range datetime formats.
FIRST = int((datetime(1, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
LAST = int(
    (
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    ).total_seconds()
)


def test_examples() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1) == "1970-01-01T00:00:00.001Z"
    assert iso(999) == "1970-01-01T00:00:00.999Z"
    assert iso(1000) == "1970-01-01T00:00:01.000Z"
    assert iso(-1) == "1969-12-31T23:59:59.999Z"
    assert iso(1_795_000_000_123) == "2026-11-18T11:06:40.123Z"


@given(st.integers(min_value=FIRST * 1000, max_value=LAST * 1000 + 999))
def test_same_as_datetime(ms: int) -> None:
    expected = datetime(1970, 1, 1) + timedelta(milliseconds=ms)
    assert iso(ms) == expected.isoformat(timespec="milliseconds") + "Z"


def test_parse_examples() -> None:
    # Through a float, 1970-01-01T00:00:04.047Z read as 4046 ms.
    assert parse_iso("1970-01-01T00:00:04.047Z") == 4047
    assert parse_iso("2026-03-01T10:00:00.123456789Z") == 1_772_359_200_123
    assert parse_iso("2026-03-01T12:00:00.5+02:00") == 1_772_359_200_500
    assert parse_iso("1969-12-31T23:59:59.999Z") == -1


@given(st.integers(min_value=FIRST * 1000, max_value=LAST * 1000 + 999))
def test_parse_reads_back_what_iso_wrote(ms: int) -> None:
    assert parse_iso(iso(ms)) == ms
