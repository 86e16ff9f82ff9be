"""Times as the API shows them: ISO 8601 UTC with milliseconds (``...T13:00:00.123Z``)."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import Field

IsoTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]

# Image configs carry RFC 3339 times, often with nanoseconds, which Python's parser
# refuses beyond microseconds.
_FRACTION = re.compile(r"(\.\d{6})\d+")


_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


@functools.lru_cache(maxsize=8192)
def _second(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).isoformat()


def iso(ms: int) -> str:
    # Lists format thousands of times per page (a tag page of 1,000 rows: two each),
    # and times pushed or pulled together share their second: the second's text is
    # remembered and only the milliseconds are formatted (a third of the cost of
    # datetime arithmetic and isoformat per call, which was 1/8 of a page's CPU).
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"


def iso_or_none(ms: int | None) -> str | None:
    return iso(ms) if ms is not None else None


def parse_iso(text: str) -> int:
    """Milliseconds since the epoch; raises ValueError for anything else."""
    moment = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Exact integer arithmetic: ``int(timestamp() * 1000)`` went through a float and
    # lost a millisecond on some values (".047" read as 46).
    return (moment - _EPOCH_UTC) // _MILLISECOND


@functools.lru_cache(maxsize=4096)
def normalized(text: str | None) -> str | None:
    """A config's ``created`` in the API's form, or None when it cannot be read."""
    if not text:
        return None
    try:
        return iso(parse_iso(text))
    except (ValueError, OverflowError, OSError):
        return None
