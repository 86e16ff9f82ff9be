"""Numbers as people read them: sizes in IEC units (KiB, MiB, GiB), counts with
their noun in the right number ("1 tag", "2 tags")."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: int | float) -> str:
    value = float(n)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{sign}{int(value)} B"
            return f"{sign}{value:.1f} {unit}" if value < 100 else f"{sign}{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def plural(n: int, one: str, many: str | None = None) -> str:
    """``one`` for a count of 1, else its plural (``many``, or ``one`` + "s")."""
    return one if n == 1 else (many if many is not None else one + "s")


def counted(n: int, one: str, many: str | None = None) -> str:
    """A count with its noun: "1 tag", "2 tags", "1,024 tags", "0 tags"."""
    return f"{n:,} {plural(n, one, many)}"
