"""Digests: sha256 and sha512 only, lowercase hex of the right length."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.digests import Digest, DigestError, is_digest, new_hasher


@given(st.binary(max_size=4096), st.sampled_from(["sha256", "sha512"]))
def test_of_and_parse_round_trip(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    assert digest.hex == hashlib.new(algorithm, data).hexdigest()
    assert Digest.parse(str(digest)) == digest
    assert str(digest) == f"{algorithm}:{digest.hex}"
    assert digest.short == f"{algorithm}:{digest.hex[:12]}"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,  # uppercase hex is not canonical
        "sha256:" + "g" * 64,
        "sha512:" + "a" * 64,  # sha512 needs 128
        "sha384:" + "a" * 96,  # not a registered algorithm
        "md5:" + "a" * 32,
        "SHA256:" + "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        " sha256:" + "a" * 64,
    ],
)
def test_malformed_digests(text: str) -> None:
    with pytest.raises(DigestError):
        Digest.parse(text)
    assert not is_digest(text)


def test_hasher_matches_hashlib() -> None:
    h = new_hasher("sha512")
    h.update(b"abc")
    h.update(b"def")
    assert h.hexdigest() == hashlib.sha512(b"abcdef").hexdigest()
    with pytest.raises(DigestError):
        new_hasher("md5")


def test_digests_order_and_hash() -> None:
    a, b = Digest.of(b"a"), Digest.of(b"b")
    assert len({a, b, Digest.parse(str(a))}) == 2
    assert sorted([b, a]) == sorted([a, b])
