"""A node's cache, in its memory, of the blobs it read whole from object storage.

Pulls of the same layers (a fleet pulling one base image, a CI farm pulling its
build image) would otherwise each read the object store again: a request that costs
money on a cloud store and, on a busy node, CPU in both the store and the registry.
Artifactory's S3 binary provider keeps such a cache by default ("cache-fs"); Berth
keeps one per ``serve`` process, bounded in bytes, least recently used first out.

In memory rather than on the node's disk: a copy costs nothing to make (the node
keeps the chunks it read from the store and sent on), whereas writing one to disk
cost about as much CPU as reading the object from the store again (0.5 s per
256 MiB into the page cache on the machines measured), and a copy in memory cannot
outlive a crash half-written.

Serving a copy is safe because a key names one immutable object: an object key
holds its blob row's generation (a UUID unique to the row), and a row's bytes never
change. Whether a blob may be served at all is still decided by the database on
every request, so a blob the GC removed is gone on every node, copied or not. A copy
is admitted only once every byte of the object arrived (a pull cut short leaves
nothing).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

# One object may take at most this share of the cache: a single huge layer must
# not push out everything the node serves often.
MAX_SHARE = 4


@dataclass(frozen=True, slots=True)
class _Copy:
    chunks: list[bytes]
    starts: list[int]  # offset of each chunk in the object
    size: int


class BlobCache:
    """Whole objects by key, at most ``limit`` bytes of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Reentrant: a fill the collector drops releases its room from __del__, which
        # may run inside a section holding the lock.
        self._mutex = threading.RLock()
        self._copies: OrderedDict[str, _Copy] = OrderedDict()  # oldest use first
        self._filling: set[str] = set()
        self._used = 0  # bytes of the copies and of the fills under way

    @property
    def used(self) -> int:
        """Bytes held, counting fills under way."""
        return self._used

    def keys(self) -> list[str]:
        """The keys held, least recently used first."""
        with self._mutex:
            return list(self._copies)

    def reader(self, key: str, start: int, length: int) -> CopyReader | None:
        """``length`` bytes from ``start`` of the copy of ``key``, or None."""
        with self._mutex:
            copy = self._copies.get(key)
            if copy is None:
                return None
            self._copies.move_to_end(key)
        # An eviction from here on drops the cache's reference, not this reader's.
        return CopyReader(copy, start, length)

    def fill(self, key: str, size: int) -> Fill | None:
        """A copy of ``key`` to keep while the object is read whole, or None when it
        is held already, being copied, too big, or the room is taken by fills under
        way."""
        if size <= 0 or size > self.limit // MAX_SHARE:
            return None
        with self._mutex:
            if key in self._copies or key in self._filling:
                return None
            while self._copies and self._used + size > self.limit:
                _, old = self._copies.popitem(last=False)
                self._used -= old.size
            if self._used + size > self.limit:
                return None
            self._used += size
            self._filling.add(key)
        return Fill(self, key, size)

    def forget(self, key: str) -> None:
        """Drop the copy of an object that was deleted."""
        with self._mutex:
            copy = self._copies.pop(key, None)
            if copy is not None:
                self._used -= copy.size

    def _admit(self, key: str, copy: _Copy) -> None:
        with self._mutex:
            self._filling.discard(key)
            self._copies[key] = copy

    def _release(self, key: str, size: int) -> None:
        with self._mutex:
            self._filling.discard(key)
            self._used -= size


class Fill:
    """One copy being gathered; :meth:`done` admits it if every byte arrived."""

    def __init__(self, cache: BlobCache, key: str, size: int) -> None:
        self._cache, self._key, self._size = cache, key, size
        self._chunks: list[bytes] = []
        self._starts: list[int] = []
        self._held = 0
        self._open = True

    def add(self, chunk: bytes) -> None:
        """Keep ``chunk`` (the next bytes of the object; bytes never change)."""
        if not self._open:
            return
        if self._held + len(chunk) > self._size:
            self.abandon()  # the store sent more than the object's size
            return
        self._starts.append(self._held)
        self._chunks.append(chunk)
        self._held += len(chunk)

    def done(self) -> None:
        """The object was read to its end: keep the copy if it is whole."""
        if not self._open:
            return
        if self._held != self._size:
            self.abandon()
            return
        self._open = False
        self._cache._admit(self._key, _Copy(self._chunks, self._starts, self._size))

    def abandon(self) -> None:
        if not self._open:
            return
        self._open = False
        self._chunks = []
        self._cache._release(self._key, self._size)

    def __del__(self) -> None:
        # A response dropped before its body was read (the client left first) never
        # runs the reader's cleanup: its room is released here.
        self.abandon()


class CopyReader:
    """``length`` bytes of a copy from ``start``, as views of its chunks."""

    def __init__(self, copy: _Copy, start: int, length: int) -> None:
        self.copy, self.start, self.length = copy, start, length

    async def chunks(self) -> AsyncIterator[bytes | memoryview]:
        copy, pos, end = self.copy, self.start, min(self.start + self.length, self.copy.size)
        i = bisect.bisect_right(copy.starts, pos) - 1
        while pos < end:
            chunk, first = copy.chunks[i], copy.starts[i]
            if pos == first and first + len(chunk) <= end:
                yield chunk
            else:
                yield memoryview(chunk)[pos - first : min(len(chunk), end - first)]
            pos = first + len(chunk)
            i += 1
