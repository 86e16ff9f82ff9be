"""What every ``berth-registry`` command's arguments share: the parser that exits with
status 2 on a bad argument, the argument types, ``--data``/``--database-url``. Kept
apart from :mod:`app.registry.cli` so the commands that live with their feature
(:mod:`app.registry.policies.cli`, :mod:`app.registry.trash_cli`) use them without
importing the command line that imports them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn, TypeAlias

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError("seconds must not be negative")
    return value


def count(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


_SIZE_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def size(text: str) -> int:
    """Bytes from "0", "512MiB", "2GiB" (IEC units, as the app prints sizes)."""
    number = text.rstrip("BbKkMmGgTtIi ")
    unit = text[len(number) :].strip().lower()
    if not number.isascii() or not number.isdigit() or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: a whole number of bytes, or with KiB, MiB, GiB or TiB"
        )
    return int(number) * _SIZE_UNITS[unit]


def port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="registry data directory")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in --data)")


# A string alias: argparse._SubParsersAction is generic only to type checkers.
SubParsers: TypeAlias = "argparse._SubParsersAction[Parser]"
