"""Content digests (``algorithm:hex``) as the OCI image spec defines them.

Only the registered algorithms sha256 and sha512 are accepted; anything else is a
malformed digest, which the registry answers with ``DIGEST_INVALID``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


class DigestError(ValueError):
    """A string that is not a valid, supported digest."""


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True, order=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = _DIGEST_RE.fullmatch(text)
        if match is None:
            raise DigestError(f"malformed digest {text!r}")
        algorithm, hexpart = match.group(1), match.group(2)
        expected = _HEX_LENGTHS.get(algorithm)
        if expected is None:
            raise DigestError(f"unsupported digest algorithm {algorithm!r}")
        if len(hexpart) != expected or not re.fullmatch(r"[0-9a-f]+", hexpart):
            raise DigestError(f"malformed {algorithm} digest {text!r}")
        return cls(algorithm, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        h = new_hasher(algorithm)
        h.update(data)
        return cls(algorithm, h.hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The form people read in tables: ``sha256:9f86d081884c``."""
        return f"{self.algorithm}:{self.hex[:12]}"


def new_hasher(algorithm: str) -> Hasher:
    if algorithm not in _HEX_LENGTHS:
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)


def is_digest(text: str) -> bool:
    try:
        Digest.parse(text)
    except DigestError:
        return False
    return True
