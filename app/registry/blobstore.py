"""The filesystem blob store.

Layout under the data directory::

    uploads/<session-id>                     bytes of an upload in progress
    blobs/<workspace-id>/<alg>/<hh>/<hex>/<generation>   committed objects

An object becomes visible only after its bytes are written, verified, fsync'd and
renamed into place. Objects are keyed per *generation* (a UUID chosen when the
blob row is created) so the GC's delete of an old generation never hits a
re-upload of the same digest (DESIGN.md, race safety rule 3).
"""

from __future__ import annotations

import ctypes
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from app.core.digests import Digest


@dataclass(frozen=True, slots=True)
class StoredObject:
    workspace_id: int
    digest: str
    generation: str
    path: Path
    size: int


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

    # objects -----------------------------------------------------------------
    def object_path(self, workspace_id: int, digest: str, generation: str) -> Path:
        d = Digest.parse(digest)
        return self.objects / str(workspace_id) / d.algorithm / d.hex[:2] / d.hex / generation

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

    def delete_object(self, workspace_id: int, digest: str, generation: str) -> bool:
        path = self.object_path(workspace_id, digest, generation)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        # Tidy empty directories; a concurrent commit may recreate them at any time.
        for parent in (path.parent, path.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break
        return True

    def exists(self, workspace_id: int, digest: str, generation: str) -> bool:
        return self.object_path(workspace_id, digest, generation).is_file()

    def iter_objects(self) -> Iterator[StoredObject]:
        """Every committed object, for fsck."""
        if not self.objects.exists():
            return
        for ws_dir in self.objects.iterdir():
            if not ws_dir.is_dir() or not ws_dir.name.isdigit():
                continue
            for alg_dir in ws_dir.iterdir():
                for prefix in alg_dir.iterdir():
                    for hex_dir in prefix.iterdir():
                        for gen in hex_dir.iterdir():
                            yield StoredObject(
                                int(ws_dir.name),
                                f"{alg_dir.name}:{hex_dir.name}",
                                gen.name,
                                gen,
                                gen.stat().st_size,
                            )
