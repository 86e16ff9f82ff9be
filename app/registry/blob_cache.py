"""A node's cache, in its memory, of the blobs it read whole from object storage.

Pulls of the same layers (a fleet pulling one base image, a CI farm pulling its
build image) would otherwise each read the object store again: a request that costs
money on a cloud store and, on a busy node, CPU in both the store and the registry.
Artifactory's S3 storage chains put such a cache in front of the bucket
("cache-fs"); Berth keeps one per ``serve`` process, bounded in bytes, least
recently used first out.

A copy is made on an object's second whole read on the node, not its first (the
node remembers the keys of the last SEEN_KEYS objects read whole): an object read
once, an image one CI job pulls or a scan of every blob, neither pushes out the
copies pulled again and again nor pays for the check of a copy nobody reads.

In memory rather than on the node's disk: a copy copies nothing (the node keeps the
chunks it read from the store and sent on); it costs the fresh memory they hold and
the digest check, about 0.25 s of CPU per 256 MiB once, after the read that made
the copy (on a thread of its own, at a lower priority than the requests), where
writing a copy to disk cost 0.5 s per 256 MiB into the page cache alone on the
machines measured. And a copy in memory cannot outlive a crash half-written.

Serving a copy is safe because a key names one immutable object: an object key
holds its blob row's generation (a UUID unique to the row), and a row's bytes never
change. Whether a blob may be served at all is still decided by the database on
every request, so a blob the GC removed is gone on every node, copied or not. A copy
is admitted only once every byte of the object arrived and they hash to the blob's
digest (a pull cut short leaves nothing, and a store that returned wrong bytes is
read again next time instead of its error being served until the copy ages out).

A node also keeps the bytes of an upload that passed through it whole (a
:class:`Draft`): the first pull after a push (a CI job pushing, a deploy pulling)
then reads no store either. A draft holds the parts the node sent to the store
anyway, so it copies nothing, and it becomes a copy only once the upload's digest
was verified and its blob row committed. Its room is reserved as the bytes arrive,
from the same share as the fills, so uploads never hold more than half the cache; a
draft left idle (a client that stopped between its PATCH and its PUT, or whose PUT
went to another node) gives its room up to the next fill or draft that needs it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from app.core.digests import Digest, DigestError, new_hasher

log = logging.getLogger(__name__)

# One object may take at most this share of the cache: a single huge layer must
# not push out everything the node serves often.
MAX_SHARE = 4
# Fills under way may reserve at most this share: pulls of many different big
# layers at once (or clients that stop reading) must not empty the cache of the
# copies it serves from.
FILLING_SHARE = 2
# Without --blob-cache-size: this share of the node's memory (its cgroup's limit
# in a container), at most DEFAULT_MAX.
MEMORY_SHARE = 8
DEFAULT_MAX = 1 << 30
# A draft untouched for this long (its upload's PUT went elsewhere, or never came)
# yields its room to a fill or a draft that needs it.
DRAFT_IDLE_S = 30.0
# The nice value of the thread checking copies' digests.
VERIFY_NICE = 10
# How long a response that read an object whole waits for its copy's check after
# its last byte (its connection's next request waits with it): on a saturated
# node the check may queue behind others, and the copy is then merely late.
CHECK_WAIT_S = 1.0
# How many objects read whole but not copied a node remembers (their keys, about
# 100 bytes each): the second whole read of one of them makes its copy. A read
# counts when it opens the object, whether or not its client reads to the end.
SEEN_KEYS = 4096


def default_size() -> int:
    """An eighth of the memory this process may use, at most 1 GiB."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            memory = min(memory, int(text))
    return min(DEFAULT_MAX, memory // MEMORY_SHARE)


def _lower_priority() -> None:
    """The calling thread yields the CPU to the process's others. Linux only: there
    a thread's nice value is its own (elsewhere the id would name a process)."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), VERIFY_NICE)


@dataclass(frozen=True, slots=True)
class _Copy:
    chunks: list[bytes]
    starts: list[int]  # offset of each chunk in the object
    size: int


class BlobCache:
    """Whole objects by key, at most ``limit`` bytes of them (copies held plus
    the fills and drafts under way)."""

    def __init__(
        self,
        limit: int,
        clock: Callable[[], float] = time.monotonic,
        verify: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.limit = limit
        self.clock = clock  # for the drafts' idle time
        # Runs a fill's digest check; by default later, on a thread of its own.
        self.verify = verify or self._verify_later
        self._verifier: ThreadPoolExecutor | None = None
        # Reentrant: a fill the collector drops releases its room from __del__, which
        # may run inside a section holding the lock.
        self._mutex = threading.RLock()
        self._copies: OrderedDict[str, _Copy] = OrderedDict()  # oldest use first
        # The token of the fill under way per key (not the fill itself: a fill the
        # client dropped must be collectable, to give its room back).
        self._filling: dict[str, object] = {}
        # Drafts by number, weakly: a draft its upload dropped gives its room back.
        self._drafts: weakref.WeakValueDictionary[int, Draft] = weakref.WeakValueDictionary()
        self._numbers = 0
        # Keys of the objects read whole once and not copied, oldest read first (a
        # key leaves when its copy is admitted: a copy evicted later is made again
        # after two more reads).
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._held = 0  # bytes of the copies
        self._reserved = 0  # bytes of the fills and drafts under way

    @property
    def used(self) -> int:
        """Bytes held, counting the fills and drafts under way."""
        with self._mutex:
            return self._held + self._reserved

    def keys(self) -> list[str]:
        """The keys held, least recently used first."""
        with self._mutex:
            return list(self._copies)

    def _verify_later(self, check: Callable[[], None]) -> None:
        # One thread, at a lower priority than the requests': the check of a copy
        # must not slow the pulls under way, the one that read it included.
        with self._mutex:
            if self._verifier is None:
                self._verifier = ThreadPoolExecutor(
                    1, thread_name_prefix="blob-cache-verify", initializer=_lower_priority
                )
            self._verifier.submit(check)

    def reader(self, key: str, start: int, length: int) -> CopyReader | None:
        """``length`` bytes from ``start`` of the copy of ``key``, or None."""
        with self._mutex:
            copy = self._copies.get(key)
            if copy is None:
                return None
            self._copies.move_to_end(key)
        # An eviction from here on drops the cache's reference, not this reader's.
        return CopyReader(copy, start, length)

    def read_before(self, key: str, size: int) -> bool:
        """Whether ``key`` (``size`` bytes) was read whole on this node before (one
        of the last SEEN_KEYS objects read whole and not copied), remembering this
        read. A copy is made on an object's second whole read, not its first: an
        object read once (one CI job's image, a single scan of everything) neither
        pushes out the copies that are pulled again and again nor costs the check
        of a copy nobody reads. An object too big to copy is not remembered."""
        if not self._fits(size):
            return False
        with self._mutex:
            known = key in self._seen
            self._seen[key] = None
            self._seen.move_to_end(key)
            if len(self._seen) > SEEN_KEYS:
                self._seen.popitem(last=False)
            return known

    def fill(self, key: str, size: int, digest: str) -> Fill | None:
        """A copy of ``key`` (``size`` bytes hashing to ``digest``) to keep while the
        object is read whole, or None when it is held already, being copied, too
        big, or the room for fills is taken."""
        if not self._fits(size):
            return None
        try:
            fill = Fill(self, key, size, Digest.parse(digest))
        except DigestError:
            return None
        with self._mutex:
            if key in self._copies or key in self._filling:
                return None
            if not self._make_room(size, None):
                return None
            self._reserved += size
            self._filling[key] = fill.token
            fill._open = True
        return fill

    def _fits(self, size: int) -> bool:
        return 0 < size <= self.limit // MAX_SHARE

    def draft(self) -> Draft:
        """An empty draft of an upload starting on this node."""
        with self._mutex:
            self._numbers += 1
            draft = Draft(self, self._numbers)
            self._drafts[draft.number] = draft
        return draft

    def _make_room(self, size: int, asking: Draft | None) -> bool:
        """Whether ``size`` more bytes may be reserved (for a fill, or for
        ``asking``'s next bytes), evicting what has to go. Under the mutex."""
        share = self.limit // FILLING_SHARE

        def short() -> bool:
            return self._reserved + size > share or self._held + self._reserved + size > self.limit

        if short():
            # Idle drafts go first, oldest first: an upload whose PUT went to another
            # node (or never came) is never told it ended.
            idle = self.clock() - DRAFT_IDLE_S
            for draft in sorted(self._drafts.values(), key=lambda d: d.touched):
                if not short() or draft.touched > idle:
                    break
                if draft is not asking:
                    draft.abandon()
        if self._reserved + size > share:
            return False  # before evicting any copy
        while self._copies and self._held + self._reserved + size > self.limit:
            _, old = self._copies.popitem(last=False)
            self._held -= old.size
        return True

    def forget(self, key: str) -> None:
        """Drop the copy of an object that was deleted, or the copy being made of it."""
        with self._mutex:
            copy = self._copies.pop(key, None)
            if copy is not None:
                self._held -= copy.size
            # A fill under way keeps its room until it ends, but is not admitted.
            self._filling.pop(key, None)
            self._seen.pop(key, None)

    def _add(self, draft: Draft, chunk: bytes) -> None:
        """``draft``'s next bytes, kept if there is room; without, it is given up."""
        with self._mutex:
            if not draft.open:
                return
            size = len(chunk)
            if draft.got + size > self.limit // MAX_SHARE or not self._make_room(size, draft):
                self._end_draft(draft, None)
                return
            self._reserved += size
            draft.starts.append(draft.got)
            draft.chunks.append(chunk)
            draft.got += size
            draft.touched = self.clock()

    def _end_draft(self, draft: Draft, key: str | None) -> None:
        """A draft ended: its room is given back, or becomes the copy of ``key``."""
        with self._mutex:
            if not draft.open:
                return
            draft.open = False
            self._reserved -= draft.got
            self._drafts.pop(draft.number, None)
            chunks, starts, draft.chunks, draft.starts = draft.chunks, draft.starts, [], []
            if key is None or draft.got == 0 or key in self._copies or key in self._filling:
                return
            self._copies[key] = _Copy(chunks, starts, draft.got)
            self._held += draft.got
            self._seen.pop(key, None)

    def forgotten(self, fill: Fill) -> bool:
        """Whether ``fill``'s object was deleted (forgotten) while it was read."""
        with self._mutex:
            return self._filling.get(fill.key) is not fill.token

    def _end(self, fill: Fill, copy: _Copy | None) -> None:
        """A fill ended: its room is given back, or becomes its copy's."""
        with self._mutex:
            self._reserved -= fill.size
            if self._filling.get(fill.key) is not fill.token:
                return  # forgotten meanwhile: the object was deleted
            del self._filling[fill.key]
            if copy is not None:
                self._copies[fill.key] = copy
                self._held += copy.size
                self._seen.pop(fill.key, None)


class Fill:
    """One copy being gathered; it is admitted when every byte arrived and they
    hash to the digest. The hashing waits for the last byte and runs on the
    cache's ``verify`` (a low-priority thread), not as the bytes stream: on a busy
    node it would otherwise slow the pull that reads the object, and the pulls
    beside it, while they transfer."""

    def __init__(self, cache: BlobCache, key: str, size: int, digest: Digest) -> None:
        self.key, self.size = key, size
        self.token = object()
        self._cache, self._digest = cache, digest
        self._chunks: list[bytes] = []
        self._starts: list[int] = []
        self._got = 0
        self._open = False  # until the cache reserved its room
        self._ended = False  # the fill's room was given back, or became its copy's
        # Done when the fill ended: its copy admitted, or its room given back.
        self.ended: Future[None] = Future()

    def add(self, chunk: bytes) -> None:
        """Keep ``chunk`` (the next bytes of the object; bytes never change)."""
        if not self._open:
            return
        if self._got + len(chunk) > self.size:
            self.abandon()  # the store sent more than the object's size
            return
        self._starts.append(self._got)
        self._chunks.append(chunk)
        self._got += len(chunk)
        if self._got == self.size:
            # At once, not at the read that finds the end: a client that leaves
            # right after the last byte still leaves a whole copy.
            self.done()

    def done(self) -> None:
        """The object was read to its end: keep the copy if it is whole and, once
        checked, right. Its room stays reserved until then."""
        if not self._open:
            return
        if self._got != self.size:
            self.abandon()
            return
        self._open = False  # nothing more comes in; only the check ends the fill
        try:
            self._cache.verify(self._check)
        except Exception:
            # The node is shutting down, or no thread could start. The check may
            # still be queued: whichever ends the fill first, ends it.
            log.exception("could not check the copy of %s; not kept", self.key)
            self._end(None)

    async def wait(self) -> None:
        """Until the fill ended, for at most CHECK_WAIT_S. The response that read
        the object waits after its last byte: with Content-Length (always set on
        a blob GET) the client has them all by then, and its next request on the
        connection finds the copy."""
        # Shielded: a client that left must not cancel what the check will set.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self.ended)), CHECK_WAIT_S)

    def _check(self) -> None:
        copy = None
        try:
            if self._cache.forgotten(self):
                return  # the object was deleted meanwhile: not worth hashing
            hasher = new_hasher(self._digest.algorithm)
            for chunk in self._chunks:
                hasher.update(chunk)
            if hasher.hexdigest() == self._digest.hex:
                copy = _Copy(self._chunks, self._starts, self.size)
            else:
                log.warning(
                    "object %s read from the store does not hash to %s; not kept",
                    self.key,
                    self._digest,
                )
        except Exception:
            log.exception("checking the copy of %s failed; not kept", self.key)
        finally:
            self._end(copy)  # whatever happened: the response waits for it

    def _end(self, copy: _Copy | None) -> None:
        """Give the room back, or make it the copy's: once, whoever comes first."""
        with self._cache._mutex:
            if self._ended:
                return
            self._ended = True
        self._chunks = []
        try:
            self._cache._end(self, copy)
        finally:
            self.ended.set_result(None)

    def abandon(self) -> None:
        if not self._open:
            return
        self._open = False
        self._end(None)

    def __del__(self) -> None:
        # A response dropped before its body was read (the client left first) never
        # runs the reader's cleanup: its room is given back here.
        self.abandon()


class Draft:
    """The bytes of an upload this node received, in order, kept for its blob's
    first pulls. Only :meth:`admit` makes them a copy: the caller verified the
    digest and committed the blob first. Its state changes under the cache's mutex:
    the cache may give an idle draft up from another thread."""

    def __init__(self, cache: BlobCache, number: int) -> None:
        self.number = number
        self.chunks: list[bytes] = []
        self.starts: list[int] = []
        self.got = 0
        self.touched = cache.clock()
        self.open = True
        self._cache = cache

    def add(self, chunk: bytes) -> None:
        """Keep ``chunk``, the upload's next bytes (bytes never change)."""
        if chunk:
            self._cache._add(self, chunk)

    def admit(self, key: str) -> None:
        """The upload is committed as the object ``key``: keep its copy."""
        self._cache._end_draft(self, key)

    def abandon(self) -> None:
        self._cache._end_draft(self, None)

    def __del__(self) -> None:
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
