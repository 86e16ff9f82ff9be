"""Blob GET/HEAD (with Range), blob DELETE, and uploads (monolithic, chunked,
streamed), with cross-repository mount inside a workspace."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app.core.digests import Digest, DigestError, Hasher
from app.core.names import ImageName, InvalidName
from app.core.permissions import Permission
from app.registry import accounts, content, uploads
from app.registry.blobstore import FileBlobStore, ObjectGone, start_writeback
from app.registry.content import Blob, Image
from app.registry.db.engine import now_ms
from app.registry.errors import (
    BlobUnknown,
    BlobUploadUnknown,
    DigestInvalid,
    RangeInvalid,
    RangeNotSatisfiable,
    SizeInvalid,
    Unauthorized,
)
from app.registry.oci.access import Target, authorize, challenge, registry_of
from app.registry.service import Registry

WRITEBACK_STEP = 8 << 20
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CONTENT_RANGE_RE = re.compile(r"^(?:bytes )?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def parse_digest(text: str) -> Digest:
    try:
        return Digest.parse(text)
    except DigestError as exc:
        raise DigestInvalid(str(exc), detail={"digest": text}) from None


# GET / HEAD -------------------------------------------------------------------


def _open_blob(reg: Registry, target: Target, digest: str) -> Blob:
    """Find the blob linked to the image and touch it, under the blob's lock."""
    now = now_ms()
    with reg.db.write() as conn:
        image = content.find_image(conn, target.repo, target.name.image)
        blob = content.image_blob(conn, image, digest, lock=True) if image else None
        if blob is None:
            raise BlobUnknown(
                f"blob {digest} is not known to this image", detail={"digest": digest}
            )
        content.touch_blob(conn, blob.id, now)
        return blob


def _parse_range(header: str, size: int) -> tuple[int, int]:
    match = _RANGE_RE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        raise RangeNotSatisfiable(
            f"malformed Range {header!r}", headers={"Content-Range": f"bytes */{size}"}
        )
    first, last = match.group(1), match.group(2)
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(
                "empty suffix range", headers={"Content-Range": f"bytes */{size}"}
            )
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(
            f"range {header!r} cannot be satisfied for {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, min(end, size - 1)


async def get_blob(request: Request, name: str, digest_text: str) -> Response:
    target = await authorize(request, name, Permission.READ, "pull")
    digest = parse_digest(digest_text)
    reg = registry_of(request)
    blob = await reg.run(_open_blob, reg, target, str(digest))
    headers = {
        "Docker-Content-Digest": blob.digest,
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
    }
    start, end, status = 0, blob.size - 1, 200
    range_header = request.headers.get("range")
    if range_header and blob.size > 0:
        start, end = _parse_range(range_header, blob.size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
    elif range_header:
        raise RangeNotSatisfiable("range on an empty blob", headers={"Content-Range": "bytes */0"})
    length = end - start + 1 if blob.size else 0
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    url = (
        await reg.run(reg.store.presigned_get, blob.workspace_id, blob.digest, blob.generation)
        if reg.redirect_blobs
        else None
    )
    if url is not None:
        # Distribution's s3 driver does the same: the bytes come from the object
        # store, not through this node (the client sends its Range there again).
        return Response(
            status_code=307,
            headers={"Location": url, "Docker-Content-Digest": blob.digest, "Content-Length": "0"},
        )
    try:
        reader = await reg.run(
            reg.store.open_reader, blob.workspace_id, blob.digest, blob.generation, start, length
        )
    except ObjectGone:
        raise BlobUnknown(f"blob {blob.digest} is gone", detail={"digest": blob.digest}) from None
    return StreamingResponse(reader.chunks(), status_code=status, headers=headers)


async def delete_blob(request: Request, name: str, digest_text: str) -> Response:
    target = await authorize(request, name, Permission.WRITE, "delete")
    digest = parse_digest(digest_text)
    reg = registry_of(request)

    def work() -> None:
        with reg.db.write() as conn:
            image = content.find_image(conn, target.repo, target.name.image)
            if image is None:
                raise BlobUnknown(f"blob {digest} is not known to this image")
            content.unlink_blob(conn, image, str(digest), reg.timing, now_ms())

    await reg.run(work)
    return Response(status_code=202, headers={"Content-Length": "0"})


# uploads ----------------------------------------------------------------------


def _upload_headers(name: str, session_id: str, size: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{session_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": session_id,
        "Content-Length": "0",
    }


def _files(reg: Registry) -> FileBlobStore | None:
    """The filesystem store, or None for object storage (app.registry.s3_uploads)."""
    return reg.store if isinstance(reg.store, FileBlobStore) else None


def _start_session(reg: Registry, target: Target) -> str:
    now = now_ms()
    with reg.db.write() as conn:
        image = content.ensure_image(conn, target.repo, target.name.image, now)
        session_id = uploads.create_session(
            conn,
            image.id,
            image.workspace_id,
            now,
            user_id=target.identity.user.id,
            limits=reg.upload_limits,
        )
    files = _files(reg)
    if files is not None:
        files.create_upload(session_id)
    reg.uploads.start(session_id)
    return session_id


def _created(name: str, digest: Digest) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": str(digest),
            "Content-Length": "0",
        },
    )


async def _s3_finish(
    reg: Registry,
    request: Request,
    target: Target,
    name: str,
    session: uploads.Session,
    state: uploads.UploadState,
    content_range: str | None,
    digest: Digest,
) -> Response:
    from app.registry import s3_uploads

    expected_len = _expected_length(request, content_range, session.size)
    await s3_uploads.finish(
        reg,
        session,
        state,
        request.stream(),
        expected_len,
        digest,
        target.repo,
        target.name.image,
    )
    return _created(name, digest)


def _token_could_mount(reg: Registry, target: Target, source: str) -> bool:
    """Whether the caller's bearer token lacks pull on the mount's source although
    the caller may read it there (same workspace): a token asked for with both
    scopes would mount, so the client is told to get one (as Distribution does)."""
    if target.identity.token_access is None:
        return False  # Basic: nothing narrows the caller's permissions
    if target.identity.token_allows("repository", source, "pull"):
        return False
    try:
        src_name = ImageName.parse(source)
    except InvalidName:
        return False
    with reg.db.read() as conn:
        src_repo = accounts.find_repository(conn, src_name.workspace, src_name.repository)
        if src_repo is None or src_repo.workspace_id != target.repo.workspace_id:
            return False
        return accounts.permission_on(conn, target.identity.user, src_repo) >= Permission.READ


def _try_mount(reg: Registry, target: Target, digest: str, source: str) -> bool:
    try:
        src_name = ImageName.parse(source)
    except InvalidName:
        return False
    now = now_ms()
    with reg.db.write() as conn:
        src_repo = accounts.find_repository(conn, src_name.workspace, src_name.repository)
        if src_repo is None or src_repo.workspace_id != target.repo.workspace_id:
            return False
        if accounts.permission_on(conn, target.identity.user, src_repo) < Permission.READ:
            return False
        if not target.identity.token_allows("repository", source, "pull"):
            return False
        src_image = content.find_image(conn, src_repo, src_name.image)
        if src_image is None:
            return False
        dest = content.ensure_image(conn, target.repo, target.name.image, now)
        return content.mount_blob(conn, src_image, dest, digest, now) is not None


async def start_upload(request: Request, name: str) -> Response:
    target = await authorize(request, name, Permission.WRITE, "push")
    reg = registry_of(request)
    params = request.query_params
    mount = params.get("mount")
    if mount is not None:
        digest = parse_digest(mount)
        source = params.get("from")
        could_mount: bool = bool(source) and await reg.run(_token_could_mount, reg, target, source)
        if could_mount:
            scope = f"repository:{name}:pull,push repository:{source}:pull"
            raise Unauthorized(
                f"the token does not grant pull on {source}, the mount's source",
                headers=challenge(request, scope, "insufficient_scope"),
                detail=[{"Type": "repository", "Name": source, "Action": "pull"}],
            )
        mounted = bool(source) and await reg.run(_try_mount, reg, target, str(digest), source)
        if mounted:
            return _created(name, digest)
    monolithic = params.get("digest") if mount is None else None
    # Check the digest before anything is created: a bad one leaves no session behind.
    expected = parse_digest(monolithic) if monolithic is not None else None
    session_id = await reg.run(_start_session, reg, target)
    if expected is None:
        return Response(status_code=202, headers=_upload_headers(name, session_id, 0))
    state = reg.uploads.get(session_id)
    async with state.lock:
        try:
            if _files(reg) is None:
                session = await reg.run(_session_for, reg, target, session_id)
                return await _s3_finish(reg, request, target, name, session, state, None, expected)
            await _append(reg, session_id, request, content_range=None)
            return await _finish(reg, target, name, session_id, expected)
        except Exception:
            # A single-request upload is all or nothing: there is no session to resume.
            await reg.run(_end, reg, session_id)
            raise


def _session_for(reg: Registry, target: Target, session_id: str) -> uploads.Session:
    with reg.db.read() as conn:
        session = uploads.get_session(conn, session_id)
        image = content.find_image(conn, target.repo, target.name.image)
    if session is None or image is None or session.image_id != image.id:
        raise BlobUploadUnknown(
            f"upload {session_id} is not known to this image", detail={"uuid": session_id}
        )
    return session


async def _current_offset(reg: Registry, session_id: str) -> int:
    """The upload's acknowledged size; the caller holds the session lock. Unknown in
    this process (a restart, a failed chunk), it is what the session row recorded at
    the last 202, and the file is cut back to it: bytes of a chunk the process died
    (or failed) receiving were never acknowledged."""
    state = reg.uploads.get(session_id)
    if state.offset < 0:
        state.hasher, state.offset = await reg.run(_recover, reg, session_id, state.algorithm)
    return state.offset


def _recover(reg: Registry, session_id: str, algorithm: str) -> tuple[Hasher, int]:
    with reg.db.read() as conn:
        session = uploads.get_session(conn, session_id)
    if session is None:
        raise BlobUploadUnknown(f"upload {session_id} is not known", detail={"uuid": session_id})
    try:
        files = _files(reg)
        assert files is not None
        return uploads.rehash(files.upload_path(session_id), algorithm, session.size)
    except FileNotFoundError:
        raise BlobUploadUnknown(f"upload {session_id} has no data") from None


def _expected_length(request: Request, content_range: str | None, offset: int) -> int | None:
    """The chunk's length from its Content-Range, which must continue the upload at
    ``offset`` (None: no Content-Range, the body is the chunk)."""
    if content_range is None:
        return None
    match = _CONTENT_RANGE_RE.fullmatch(content_range.strip())
    if match is None:
        raise RangeInvalid(
            f"malformed Content-Range {content_range!r}",
            headers={"Range": f"0-{max(offset - 1, 0)}"},
        )
    start, end = int(match.group(1)), int(match.group(2))
    if start != offset or end < start:
        raise RangeInvalid(
            f"chunk {start}-{end} does not continue the upload at offset {offset}",
            headers={"Range": f"0-{max(offset - 1, 0)}"},
        )
    expected_len = end - start + 1
    length_header = request.headers.get("content-length")
    if length_header is not None and int(length_header) != expected_len:
        raise RangeInvalid(
            "Content-Length does not match Content-Range",
            headers={"Range": f"0-{max(offset - 1, 0)}"},
        )
    return expected_len


async def _append(
    reg: Registry, session_id: str, request: Request, content_range: str | None
) -> int:
    """Append the request body to the upload; the caller holds the session lock."""
    offset = await _current_offset(reg, session_id)
    state = reg.uploads.get(session_id)
    expected_len = _expected_length(request, content_range, offset)
    files = _files(reg)
    assert files is not None
    path: Path = files.upload_path(session_id)
    written = 0
    kicked = offset
    # Append in the event loop: page-cache writes are fast, and the hash keeps up.
    try:
        upload = open(path, "r+b")  # noqa: ASYNC230, SIM115
    except FileNotFoundError:
        # Its image was deleted meanwhile, and the image's upload sessions with it (a
        # 500 in the trash stress: a push racing the delete of its image).
        raise BlobUploadUnknown(
            f"upload {session_id} is gone: its image was deleted", detail={"uuid": session_id}
        ) from None
    with upload as f:
        f.seek(offset)
        try:
            async for chunk in request.stream():
                if state.cancelled:
                    raise BlobUploadUnknown(
                        f"upload {session_id} was cancelled", detail={"uuid": session_id}
                    )
                if not chunk:
                    continue
                f.write(chunk)
                state.hasher.update(chunk)
                written += len(chunk)
                if offset + written - kicked >= WRITEBACK_STEP:
                    # Let the disk catch up as bytes arrive, not all at the commit's
                    # fsync; and a big upload never gets throttled for dirty pages.
                    f.flush()
                    start_writeback(f.fileno(), kicked, offset + written - kicked)
                    kicked = offset + written
        except BaseException:
            # A broken chunk leaves nothing behind: cut back to the last good offset.
            f.truncate(offset)
            state.offset = -1
            raise
        if expected_len is not None and written != expected_len:
            f.truncate(offset)
            state.offset = -1
            raise SizeInvalid(f"chunk had {written} bytes, Content-Range promised {expected_len}")
        f.truncate(offset + written)
    if written:
        try:
            recorded = await reg.run(_record, reg, session_id, offset + written)
        except BaseException:
            state.offset = -1  # not acknowledged: the next request cuts it off again
            raise
        if not recorded or state.cancelled:
            # Cancelled while the chunk streamed in (here or on another node).
            raise BlobUploadUnknown(
                f"upload {session_id} was cancelled", detail={"uuid": session_id}
            )
    state.offset = offset + written
    return state.offset


def _record(reg: Registry, session_id: str, size: int) -> bool:
    with reg.db.write() as conn:
        return uploads.record_progress(conn, session_id, size, now_ms())


async def patch_upload(request: Request, name: str, session_id: str) -> Response:
    target = await authorize(request, name, Permission.WRITE, "push")
    reg = registry_of(request)
    await reg.run(_session_for, reg, target, session_id)
    state = reg.uploads.get(session_id)
    content_range = request.headers.get("content-range")
    async with state.lock:
        if _files(reg) is None:
            from app.registry import s3_uploads

            # Read after the lock: a chunk this node just took may have moved it on.
            session = await reg.run(_session_for, reg, target, session_id)
            expected_len = _expected_length(request, content_range, session.size)
            chunk = await s3_uploads.receive(
                reg, session, state, request.stream(), expected_len, final=False
            )
            size = await reg.run(s3_uploads.land, reg, chunk)
        else:
            size = await _append(reg, session_id, request, content_range)
    headers = _upload_headers(name, session_id, size)
    return Response(status_code=202, headers=headers)


async def upload_status(request: Request, name: str, session_id: str) -> Response:
    target = await authorize(request, name, Permission.WRITE, "push")
    reg = registry_of(request)
    session = await reg.run(_session_for, reg, target, session_id)
    if _files(reg) is None:
        # Only what landed counts: a chunk still streaming has not.
        return Response(status_code=204, headers=_upload_headers(name, session_id, session.size))
    state = reg.uploads.get(session_id)
    async with state.lock:
        size = await _current_offset(reg, session_id)
    return Response(status_code=204, headers=_upload_headers(name, session_id, size))


async def cancel_upload(request: Request, name: str, session_id: str) -> Response:
    target = await authorize(request, name, Permission.WRITE, "push")
    reg = registry_of(request)
    await reg.run(_session_for, reg, target, session_id)
    # Not under the session lock: a chunk streaming in must not hold the cancel up.
    # It sees the flag (or, on another node, the missing row) and is refused.
    reg.uploads.cancel(session_id)
    await reg.run(_end, reg, session_id)
    return Response(status_code=204, headers={"Content-Length": "0"})


def _end(reg: Registry, session_id: str) -> None:
    files = _files(reg)
    if files is None:
        from app.registry import s3_uploads

        s3_uploads.cancel(reg, session_id)
        return
    with reg.db.write() as conn:
        uploads.end_session(conn, session_id)
    files.discard_upload(session_id)
    reg.uploads.drop(session_id)


async def put_upload(request: Request, name: str, session_id: str) -> Response:
    target = await authorize(request, name, Permission.WRITE, "push")
    reg = registry_of(request)
    await reg.run(_session_for, reg, target, session_id)
    digest_text = request.query_params.get("digest")
    if digest_text is None:
        raise DigestInvalid("the digest query parameter is required to complete an upload")
    digest = parse_digest(digest_text)
    state = reg.uploads.get(session_id)
    content_range = request.headers.get("content-range")
    async with state.lock:
        if _files(reg) is None:
            session = await reg.run(_session_for, reg, target, session_id)
            return await _s3_finish(
                reg, request, target, name, session, state, content_range, digest
            )
        await _append(reg, session_id, request, content_range)
        return await _finish(reg, target, name, session_id, digest)


async def _finish(
    reg: Registry, target: Target, name: str, session_id: str, digest: Digest
) -> Response:
    state = reg.uploads.get(session_id)
    files = _files(reg)
    assert files is not None
    path = files.upload_path(session_id)
    if state.algorithm != digest.algorithm or state.offset < 0:
        try:
            state.hasher, state.offset = await reg.run(uploads.rehash, path, digest.algorithm)
        except FileNotFoundError:
            raise BlobUploadUnknown(f"upload {session_id} was cancelled") from None
        state.algorithm = digest.algorithm
    if state.hasher.hexdigest() != digest.hex:
        await reg.run(_end, reg, session_id)
        raise DigestInvalid(
            f"uploaded content does not match digest {digest}", detail={"digest": str(digest)}
        )
    size = state.offset
    await reg.run(_commit, reg, target, session_id, str(digest), size)
    return _created(name, digest)


def _commit(reg: Registry, target: Target, session_id: str, digest: str, size: int) -> None:
    from app.registry.blobstore import new_generation

    generation = new_generation()
    workspace_id = target.repo.workspace_id
    files = _files(reg)
    assert files is not None
    cancelled = BlobUploadUnknown(f"upload {session_id} was cancelled", detail={"uuid": session_id})
    try:
        files.commit_upload(session_id, workspace_id, digest, generation)
    except FileNotFoundError:
        raise cancelled from None
    reg.uploads.drop(session_id)
    kept = False
    try:
        now = now_ms()
        with reg.db.write() as conn:
            if not uploads.end_session(conn, session_id):
                raise cancelled  # meanwhile, by a request that did not wait for ours
            image = content.ensure_image(conn, target.repo, target.name.image, now)
            _blob, kept = content.finish_upload(
                conn, image, digest, size, generation, reg.timing, now
            )
    finally:
        if not kept:
            # The workspace already held these bytes (or the commit failed): ours go.
            reg.store.delete_object(workspace_id, digest, generation)


def image_for(reg: Registry, target: Target) -> Image | None:
    with reg.db.read() as conn:
        return content.find_image(conn, target.repo, target.name.image)
