"""How values read in the window: sizes in IEC units, digests shortened, times
relative with the exact time in the tooltip, counts with their noun in the right
number ("1 tag", "2 tags")."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

# Sizes and counts are core's (the backends, below this package, count too).
from app.core.units import counted, format_bytes, plural

__all__ = [
    "counted",
    "exact_bytes",
    "format_bytes",
    "known_bytes",
    "long_time",
    "plain_text",
    "plural",
    "relative_time",
    "short_digest",
    "timestamp",
]

NOT_MEASURED = "—"


_TAG = re.compile(r"<[^>]*>")


def plain_text(rich: str) -> str:
    """A label's rich text as words (for an accessible description: a screen reader
    would read the markup aloud)."""
    return html.unescape(_TAG.sub("", rich))


def exact_bytes(n: int) -> str:
    """A size to the byte, for tooltips: "1 byte", "1,048,576 bytes"."""
    return counted(n, "byte")


def known_bytes(n: int) -> str:
    """A size, or a dash for one not measured yet (negative: a plain OCI registry
    tells sizes only once its manifests have been read)."""
    return format_bytes(n) if n >= 0 else NOT_MEASURED


def short_digest(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest


def relative_time(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "—"
    now = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (now - when).total_seconds()
    if seconds < 0:
        return when.astimezone().strftime("%Y-%m-%d %H:%M")
    for limit, size, unit in (
        (60, 1, "s"),
        (3600, 60, "min"),
        (86400, 3600, "h"),
        (86400 * 45, 86400, "d"),
    ):
        if seconds < limit:
            return f"{int(seconds // size)} {unit} ago"
    return when.astimezone().strftime("%Y-%m-%d")


def long_time(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


# Sorts before every real time: a sort key for "no time" that compares as a datetime.
NEVER = datetime.min.replace(tzinfo=UTC)


def timestamp(when: datetime | None) -> float:
    """A number to sort on; missing times sort first."""
    return when.timestamp() if when is not None else float("-inf")
