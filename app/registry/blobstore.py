"""Blob stores: what the registry needs of one (:class:`BlobStore`), and the
filesystem store, the embedded default.

Objects are keyed per *generation* (a UUID chosen when the blob row is created) so
the GC's delete of an old generation never hits a re-upload of the same digest
(DESIGN.md, race safety rule 3): ``blobs/<workspace-id>/<alg>/<hh>/<hex>/<generation>``
on a filesystem, ``blobs/<workspace-id>/<generation>`` in object storage. An object
is stored before its row commits and deleted only after its row's delete commits;
a crash in between leaks bytes that ``fsck`` reclaims, never loses referenced
content.

Filesystem layout under the data directory::

    uploads/<session-id>                     bytes of an upload in progress
    blobs/<workspace-id>/<alg>/<hh>/<hex>/<generation>   committed objects

A file object becomes visible only after its bytes are written, verified, fsync'd
and renamed into place. The S3 store is in :mod:`app.registry.s3store`.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import unquote, urlsplit

from starlette.concurrency import run_in_threadpool

from app.core.digests import Digest, DigestError

READ_CHUNK = 2 << 20
# Objects fsck lists and compares with the database at a time.
PAGE = 1000


class StoreUnavailable(Exception):
    """The blob store could not be reached or refused a request (answered 503)."""


class ObjectGone(Exception):
    """The object of a blob row is not in the store."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    workspace_id: int
    digest: str | None  # None where the key does not name it (object storage)
    generation: str
    path: Path | str  # a file's path, or an object's key
    size: int
    changed_ms: int = 0  # last write: a file's mtime/ctime, an object's LastModified


@dataclass(frozen=True, slots=True)
class Stray:
    """Something in the object area that is no object (fsck reports it)."""

    where: str


@dataclass(frozen=True, slots=True)
class ObjectRef:
    workspace_id: int
    digest: str
    generation: str


class BlobReader(Protocol):
    """An object opened for reading: opened before the response starts, so a
    missing object is a 404 and not a cut-off body."""

    def chunks(self) -> AsyncIterator[bytes | memoryview]: ...


class BlobStore(Protocol):
    """What the registry needs of a blob store. Uploads are not here: each store's
    upload path is its own (:mod:`app.registry.oci.blobs` for files,
    :mod:`app.registry.s3_uploads` for S3)."""

    description: str
    # What the registry records of its store (app.registry.store_record): "file" for
    # any directory, "s3://BUCKET[/PREFIX]" for a bucket. Not the endpoint, which
    # may change while the objects stay.
    identity: str

    def open_reader(
        self, workspace_id: int, digest: str, generation: str, start: int, length: int
    ) -> BlobReader:
        """Open ``length`` bytes from ``start``; raises :class:`ObjectGone`."""
        ...

    def read_bytes(
        self, workspace_id: int, digest: str, generation: str, limit: int
    ) -> bytes | None:
        """Up to ``limit`` bytes of a small object (an image config), None if gone."""
        ...

    def put_object(self, workspace_id: int, digest: str, generation: str, data: bytes) -> None:
        """Store verified bytes under their key (demo seeding)."""
        ...

    def delete_object(self, workspace_id: int, digest: str, generation: str) -> bool: ...

    def delete_objects(self, refs: Iterable[ObjectRef]) -> None:
        """Delete many objects (the GC's freed blobs); missing ones are no error."""
        ...

    def exists(self, workspace_id: int, digest: str, generation: str) -> bool: ...

    def object_pages(self) -> Iterator[list[StoredObject | Stray]]:
        """Every stored object, a page at a time (fsck)."""
        ...

    def remove_orphan(self, obj: StoredObject) -> bool:
        """Delete an object fsck found without a row; True when it is gone."""
        ...

    def presigned_get(self, workspace_id: int, digest: str, generation: str) -> str | None:
        """A URL clients may GET the object from directly, if the store has them."""
        ...

    def hash_object(
        self, workspace_id: int, digest: str, generation: str, algorithm: str
    ) -> str | None:
        """The object's bytes hashed (fsck --verify-content), None if it is gone."""
        ...


def object_key(workspace_id: int, digest: str, generation: str) -> str:
    """A file object's path, relative to the store's root."""
    d = Digest.parse(digest)
    return f"blobs/{workspace_id}/{d.algorithm}/{d.hex[:2]}/{d.hex}/{generation}"


def open_blob_store(url: str | None, data_dir: Path) -> BlobStore:
    """The store a ``--blob-store`` URL names: ``file:///path`` (default: the data
    directory) or ``s3://bucket[/prefix]`` (endpoint, region and credentials from
    the standard AWS environment). Raises ``ValueError`` for a URL it cannot use and
    :class:`StoreUnavailable` when the bucket cannot be used."""
    if url is None:
        return FileBlobStore(data_dir)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(f"--blob-store {url}: a file URL is file:///absolute/path")
        return FileBlobStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        try:
            from app.registry.s3store import S3BlobStore
        except ImportError as exc:  # boto3 comes with the "s3" extra only
            raise ValueError(
                f"--blob-store {url}: this installation has no S3 support ({exc.name} is "
                "missing); install Berth with its s3 extra: pip install 'berth[s3]'"
            ) from None
        return S3BlobStore.connect(parts.netloc, unquote(parts.path).strip("/"))
    raise ValueError(f"--blob-store {url}: use file:///path or s3://bucket[/prefix]")


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    fn = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], fn)


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range of a file to disk, without waiting for
    it (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; a no-op elsewhere). This is
    not a durability step: commit_upload still fsyncs before anything is visible."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


_COMMIT_ATTEMPTS = 10


def new_generation() -> str:
    return str(uuid.uuid4())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs_durably(path: Path) -> None:
    """``mkdir -p``, then fsync the parent of each directory it made: a crash must not
    lose the directory entry of an object whose row has been committed."""
    made = []
    missing = path
    while not missing.exists():
        made.append(missing)
        missing = missing.parent
    for directory in reversed(made):
        # exist_ok: a concurrent commit into the same prefix may have made it.
        directory.mkdir(exist_ok=True)
        _fsync_dir(directory.parent)


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads = root / "uploads"
        self.objects = root / "blobs"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.objects.mkdir(parents=True, exist_ok=True)
        self.description = f"file://{root}"
        # Not the path: a data directory may move, its database with it.
        self.identity = "file"

    # uploads -----------------------------------------------------------------
    def upload_path(self, session_id: str) -> Path:
        return self.uploads / session_id

    def create_upload(self, session_id: str) -> Path:
        path = self.upload_path(session_id)
        path.touch(exist_ok=False)
        return path

    def upload_size(self, session_id: str) -> int | None:
        try:
            return self.upload_path(session_id).stat().st_size
        except FileNotFoundError:
            return None

    def discard_upload(self, session_id: str) -> None:
        self.upload_path(session_id).unlink(missing_ok=True)

    def upload_ids(self) -> list[str]:
        return [p.name for p in self.uploads.iterdir() if p.is_file()]

    def upload_files(self) -> dict[str, tuple[int, int]]:
        """Session id -> (bytes, last write in ms) of every upload file."""
        out = {}
        with os.scandir(self.uploads) as entries:
            for entry in entries:
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # ended meanwhile
                if entry.is_file():
                    out[entry.name] = (st.st_size, int(st.st_mtime * 1000))
        return out

    # objects -----------------------------------------------------------------
    def object_path(self, workspace_id: int, digest: str, generation: str) -> Path:
        return self.root / object_key(workspace_id, digest, generation)

    def commit_upload(
        self, session_id: str, workspace_id: int, digest: str, generation: str
    ) -> Path:
        """Make an upload's verified bytes durable under their final key."""
        src = self.upload_path(session_id)
        with open(src, "rb+") as f:
            os.fsync(f.fileno())
        dest = self.object_path(workspace_id, digest, generation)
        for attempt in range(_COMMIT_ATTEMPTS):
            try:
                _make_dirs_durably(dest.parent)
                os.replace(src, dest)
                break
            except FileNotFoundError:
                # The GC tidied a (then empty) directory of the path away between our
                # steps: between two mkdirs as well as between mkdir and rename.
                if attempt == _COMMIT_ATTEMPTS - 1 or not src.exists():
                    raise
        _fsync_dir(dest.parent)
        return dest

    def open_reader(
        self, workspace_id: int, digest: str, generation: str, start: int, length: int
    ) -> BlobReader:
        path = self.object_path(workspace_id, digest, generation)
        # Open before answering: once open, a concurrent GC unlink cannot cut the stream.
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise ObjectGone(str(path)) from None
        return _FileReader(fd, start, length)

    def read_bytes(
        self, workspace_id: int, digest: str, generation: str, limit: int
    ) -> bytes | None:
        try:
            with open(self.object_path(workspace_id, digest, generation), "rb") as f:
                return f.read(limit)
        except OSError:
            return None

    def put_object(self, workspace_id: int, digest: str, generation: str, data: bytes) -> None:
        # Straight to the object's key, without the upload path's fsyncs: only demo
        # seeding writes this way, and a seed cut short is thrown away, not recovered.
        path = self.object_path(workspace_id, digest, generation)
        for attempt in range(_COMMIT_ATTEMPTS):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                return
            except FileNotFoundError:
                if attempt == _COMMIT_ATTEMPTS - 1:
                    raise

    def delete_object(self, workspace_id: int, digest: str, generation: str) -> bool:
        try:
            _unlink_tidily(self.object_path(workspace_id, digest, generation))
        except FileNotFoundError:
            return False
        return True

    def delete_objects(self, refs: Iterable[ObjectRef]) -> None:
        for ref in refs:
            self.delete_object(ref.workspace_id, ref.digest, ref.generation)

    def exists(self, workspace_id: int, digest: str, generation: str) -> bool:
        return self.object_path(workspace_id, digest, generation).is_file()

    def presigned_get(self, workspace_id: int, digest: str, generation: str) -> str | None:
        return None

    def hash_object(
        self, workspace_id: int, digest: str, generation: str, algorithm: str
    ) -> str | None:
        hasher = hashlib.new(algorithm)
        try:
            with open(self.object_path(workspace_id, digest, generation), "rb") as f:
                while chunk := f.read(READ_CHUNK):
                    hasher.update(chunk)
        except FileNotFoundError:
            return None
        return hasher.hexdigest()

    def object_pages(self) -> Iterator[list[StoredObject | Stray]]:
        page: list[StoredObject | Stray] = []
        for item in self._walk():
            page.append(item)
            if len(page) >= PAGE:
                yield page
                page = []
        if page:
            yield page

    def _walk(self) -> Iterator[StoredObject | Stray]:
        """Every object under ``blobs/<ws>/<alg>/<hh>/<hex>/<generation>``; anything
        else there is a stray entry."""
        root = self.objects
        if not root.is_dir():
            return
        for ws_dir in sorted(root.iterdir()):
            if not (ws_dir.is_dir() and ws_dir.name.isdigit()):
                yield Stray(str(ws_dir))
                continue
            for alg_dir in sorted(ws_dir.iterdir()):
                for prefix in sorted(alg_dir.iterdir()) if alg_dir.is_dir() else [alg_dir]:
                    for hex_dir in sorted(prefix.iterdir()) if prefix.is_dir() else [prefix]:
                        digest = f"{alg_dir.name}:{hex_dir.name}"
                        try:
                            valid = hex_dir.is_dir() and Digest.parse(digest).hex[:2] == prefix.name
                        except DigestError:
                            valid = False
                        if not valid:
                            yield Stray(str(hex_dir))
                            continue
                        for gen in sorted(hex_dir.iterdir()):
                            try:
                                st = gen.stat()
                            except FileNotFoundError:
                                continue  # removed meanwhile (the GC)
                            if not gen.is_file():
                                yield Stray(str(gen))
                                continue
                            changed = int(max(st.st_mtime, st.st_ctime) * 1000)
                            yield StoredObject(
                                int(ws_dir.name), digest, gen.name, gen, st.st_size, changed
                            )

    def remove_orphan(self, obj: StoredObject) -> bool:
        try:
            _unlink_tidily(Path(obj.path))
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True


def _unlink_tidily(path: Path) -> None:
    """Remove an object's file, then its directories if that left them empty (a
    concurrent commit may make them again at any time)."""
    path.unlink()
    for parent in (path.parent, path.parent.parent):
        try:
            parent.rmdir()
        except OSError:
            break


class _FileReader:
    def __init__(self, fd: int, start: int, length: int) -> None:
        self.fd, self.start, self.length = fd, start, length

    async def chunks(self) -> AsyncIterator[bytes | memoryview]:
        fd = self.fd
        try:
            pos, remaining = self.start, self.length
            while remaining > 0:
                size = min(READ_CHUNK, remaining)
                chunk: bytes | memoryview | None = _read_cached(fd, size, pos)
                if chunk is None:
                    # Not in the page cache: wait for the disk in a worker thread.
                    chunk = await run_in_threadpool(os.pread, fd, size, pos)
                    if not chunk:
                        break
                pos += len(chunk)
                remaining -= len(chunk)
                yield chunk
        finally:
            os.close(fd)


_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def _read_cached(fd: int, size: int, pos: int) -> memoryview | None:
    """What of the range the page cache holds, read without blocking (Linux
    preadv2 RWF_NOWAIT), or None. Hot layers then stream without a thread hop per
    chunk, which is most of the cost of serving them from Python."""
    if _RWF_NOWAIT is None:
        return None
    buf = bytearray(size)
    try:
        n = os.preadv(fd, [buf], pos, _RWF_NOWAIT)
    except OSError:  # EAGAIN: not cached; EOPNOTSUPP: a filesystem without it
        return None
    return memoryview(buf)[:n] if n > 0 else None
