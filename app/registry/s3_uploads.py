"""Chunked uploads to object storage, continued by whichever node a chunk reaches.

An upload is an S3 multipart upload whose state lives in the database
(``upload_sessions`` and ``upload_parts``), never in a node's memory, so the PATCHes
of one upload may land on different nodes and its final PUT on a third:

* A chunk streams into parts of :func:`~app.registry.s3store.part_size` bytes,
  uploaded as they fill (two in flight). The multipart upload begins with the
  first full part and writes straight to the object's final key, which names the
  workspace and a fresh generation but not the digest (still unknown then; see
  :mod:`app.registry.s3store`), so completing it copies nothing; an upload that
  never fills a part is one PUT at the end.
* Bytes past the last part are *staged* as an object of their own
  (``uploads/<session>/<name>``, a name each chunk makes for its own): S3 refuses
  parts under 5 MiB except the last, and a chunk may be any size. The next chunk
  reads them back first.
* A chunk *lands* only if the session is still at the version it started from
  (compare-and-set in one statement); then its parts and the new offset are
  recorded. Part numbers are reserved one by one from the session row, so two
  chunks racing on one session (a confused client, a retry through another node)
  never share a part: the loser's parts are simply never listed in the finished
  object, and it answers 416.
* The final PUT uploads what is left as the last part, completes the multipart
  upload and verifies the digest before the blob row commits: from the running
  hash when this node saw every byte, otherwise by reading the object back.
  A mismatch deletes the object; nothing was ever visible.
* A node that received every byte of an upload keeps the parts it sent as a draft
  of its blob cache; once the blob row commits, they are its copy, and the first
  pull after the push reads no store (:mod:`app.registry.blob_cache`).

Abandoned uploads cost money on S3: the housekeeping ends sessions idle past the
upload TTL, aborts their multipart uploads and deletes their staged bytes, and
aborts multipart uploads and staged objects no session holds (a node killed
between beginning one and recording it). A cancelled upload, or one into an image
that was deleted (:mod:`app.registry.ended_uploads`), is released at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from app.core.digests import Digest
from app.registry import content, uploads
from app.registry.accounts import Repository
from app.registry.blob_cache import Draft
from app.registry.blobstore import ObjectGone, StoreUnavailable, new_generation
from app.registry.db.engine import now_ms
from app.registry.errors import BlobUploadUnknown, DigestInvalid, RangeInvalid, SizeInvalid
from app.registry.s3store import MAX_PARTS, MIN_PART, S3BlobStore, part_size
from app.registry.service import Registry
from app.registry.uploads import Part, Session, UploadState

log = logging.getLogger(__name__)

IN_FLIGHT = 2  # parts uploading while the next one fills


def _store(reg: Registry) -> S3BlobStore:
    assert isinstance(reg.store, S3BlobStore)
    return reg.store


def _unknown(session_id: str) -> BlobUploadUnknown:
    return BlobUploadUnknown(f"upload {session_id} is not known", detail={"uuid": session_id})


def reload(reg: Registry, session_id: str) -> Session:
    with reg.db.read() as conn:
        session = uploads.get_session(conn, session_id)
    if session is None:
        raise _unknown(session_id)
    return session


@dataclass
class _Chunk:
    """What one request added: parts uploaded, bytes past them, and the hash."""

    session: Session
    state: UploadState  # this node's, as the request found it
    rest: bytearray
    written: int = 0
    parts: list[Part] = field(default_factory=list)
    multipart: tuple[str, str] | None = None  # (generation, upload id)
    hashing: bool = False
    # The blob cache's draft of the upload, while this node has seen every byte.
    draft: Draft | None = None

    @property
    def offset(self) -> int:
        return self.session.size + self.written


def _begin_multipart(reg: Registry, session: Session) -> tuple[str, str]:
    """The session's multipart upload, begun here if no node has yet."""
    store = _store(reg)
    generation = new_generation()
    key = store.key(session.workspace_id, "", generation)
    upload_id = store.create_multipart(key)
    with reg.db.write() as conn:
        won = uploads.begin_multipart(conn, session.id, generation, upload_id)
        current = uploads.get_session(conn, session.id)
    if won:
        return generation, upload_id
    store.abort_multipart(key, upload_id)
    if current is None or current.s3.multipart_id is None or current.s3.generation is None:
        raise _unknown(session.id)
    return current.s3.generation, current.s3.multipart_id


def _reserve(reg: Registry, session_id: str) -> int:
    with reg.db.write() as conn:
        number = uploads.reserve_part(conn, session_id)
    if number is None:
        raise _unknown(session_id)
    if number > MAX_PARTS:
        raise SizeInvalid("the upload is too large for the object store (10,000 parts)")
    return int(number)


def _upload_part(reg: Registry, chunk: _Chunk, data: bytes, number: int) -> Part:
    """Upload ``data`` as part ``number`` (reserved by the caller, in the order of
    the bytes: the object is its parts in number order)."""
    assert chunk.multipart is not None
    generation, upload_id = chunk.multipart
    key = _store(reg).key(chunk.session.workspace_id, "", generation)
    try:
        etag = _store(reg).upload_part(key, upload_id, number, data)
    except ObjectGone:
        # Aborted by a cancel or an image delete on any node (404, as for a chunk
        # that reaches a session already ended), or behind Berth's back. Or
        # completed: a PUT on another node may be between completing the object and
        # committing its row, so the row is left alone (the expiry takes it).
        raise _unknown(chunk.session.id) from None
    return Part(number, etag, len(data))


def _staged_bytes(reg: Registry, session: Session) -> bytes:
    """The bytes ``session`` holds staged (a tail too small to be a part)."""
    store = _store(reg)
    try:
        staged = store.get_staged(_staged_key(store, session))
    except ObjectGone:
        with reg.db.read() as conn:
            current = uploads.get_session(conn, session.id)
        if current is not None and current.s3.version != session.s3.version:
            # A chunk on another node landed after this request read the session
            # and replaced the staged bytes: this one came at a stale offset.
            raise RangeInvalid(
                f"another chunk of upload {session.id} landed first; ask for its offset",
                headers={"Range": f"0-{max(current.size - 1, 0)}"},
            ) from None
        # Cancelled or its image deleted meanwhile, or its bytes removed behind
        # Berth's back: as with a multipart upload aborted under it, the client
        # starts again (a row left behind goes with the expiry).
        raise _unknown(session.id) from None
    if len(staged) != session.s3.staged:
        raise StoreUnavailable(f"staged bytes of upload {session.id} are incomplete")
    return staged


async def receive(
    reg: Registry,
    session: Session,
    state: UploadState,
    body: AsyncIterator[bytes],
    expected_len: int | None,
    *,
    final: bool,
) -> _Chunk:
    """Stream a request body into the session's multipart upload. ``state`` is the
    session's state in this process, whose lock the caller holds (passed, not
    looked up again: a cancel meanwhile drops it from the table, and a fresh one
    would hash this chunk alone). Nothing is recorded: :func:`land` (a PATCH) or
    :func:`finish` (the PUT) does that."""
    store = _store(reg)
    # Reset, never replaced, so that every request on the session takes its turn.
    if session.size == 0:
        state.restart()
        if store.cache is not None:
            state.draft = store.cache.draft()
    chunk = _Chunk(session, state, bytearray(), hashing=state.offset == session.size)
    if not chunk.hashing:
        state.offset = -1  # the bytes so far went through another node
        state.forget_draft()
    # Read once, and carried by the chunk: a cancel may forget the draft meanwhile
    # (adding to it is then a no-op).
    draft = chunk.draft = state.draft
    if session.s3.multipart_id is not None and session.s3.generation is not None:
        chunk.multipart = (session.s3.generation, session.s3.multipart_id)
    if session.s3.staged:
        chunk.rest += await reg.run(_staged_bytes, reg, session)
    pending: list[asyncio.Task[Part]] = []
    # The number the next part will get, counted here to size the parts (they grow
    # with their numbers) before each part's number is reserved. It is the number
    # _reserve hands out while nothing else reserves on the session: requests on it
    # take turns under its state's lock on a node, and a client sends its chunks one
    # after the other. A PATCH racing on another node would only make this count
    # lag, and its parts smaller, never below PART_STEP (at least S3's minimum).
    next_number = session.s3.next_part

    async def cut(size: int) -> None:
        nonlocal next_number
        if chunk.multipart is None:
            chunk.multipart = await reg.run(_begin_multipart, reg, session)
        data = bytes(chunk.rest[:size])
        del chunk.rest[:size]
        if draft is not None:
            draft.add(data)  # the part itself, not a copy of it
        if len(pending) >= IN_FLIGHT:
            chunk.parts.append(await pending.pop(0))
        # Reserved here, one after the other, not in the uploading threads: two
        # parts in flight must not take their numbers in the other order.
        number = await reg.run(_reserve, reg, session.id)
        pending.append(asyncio.create_task(reg.run(_upload_part, reg, chunk, data, number)))
        next_number += 1

    try:
        async for data in body:
            if not data:
                continue
            if chunk.hashing:
                state.hasher.update(data)
            chunk.rest += data
            chunk.written += len(data)
            while len(chunk.rest) >= part_size(next_number):
                await cut(part_size(next_number))
        if expected_len is not None and chunk.written != expected_len:
            raise SizeInvalid(
                f"chunk had {chunk.written} bytes, Content-Range promised {expected_len}"
            )
        if not final and len(chunk.rest) >= MIN_PART:
            await cut(len(chunk.rest))  # big enough for a part of its own
        while pending:
            chunk.parts.append(await pending.pop(0))
    except BaseException:
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task
        # What this node hashed no longer matches what the session holds.
        state.offset = -1
        state.forget_draft()
        raise
    if chunk.hashing:
        state.offset = chunk.offset
    return chunk


def _lost(chunk: _Chunk) -> None:
    """A chunk received did not land: what this node hashed (and kept) now runs
    ahead of the session, and must never be trusted again, even if another node's
    chunk brings the session to the same offset."""
    chunk.state.offset = -1
    chunk.state.forget_draft()


def land(reg: Registry, chunk: _Chunk) -> int:
    """Record a PATCH's chunk; returns the session's new offset."""
    try:
        return _land(reg, chunk)
    except BaseException:
        _lost(chunk)
        raise


def _land(reg: Registry, chunk: _Chunk) -> int:
    store = _store(reg)
    session = chunk.session
    # Named by this chunk alone: a chunk racing it from the same version must not
    # overwrite these bytes, nor delete them when it loses.
    name = f"{session.s3.version + 1}-{secrets.token_hex(8)}" if chunk.rest else None
    new_key = store.staged_key(session.id, name) if name is not None else None
    if new_key is not None:
        store.put_staged(new_key, bytes(chunk.rest))
    with reg.db.write() as conn:
        landed = uploads.land_chunk(
            conn, session, chunk.offset, len(chunk.rest), name, chunk.parts, now_ms()
        )
        alive = landed or uploads.get_session(conn, session.id) is not None
    if not landed:
        if new_key is not None:
            _forget_staged(store, [new_key])
        if not alive:
            raise _unknown(session.id)
        raise RangeInvalid(
            f"another chunk of upload {session.id} landed first; ask for its offset",
            headers={"Range": f"0-{max(session.size - 1, 0)}"},
        )
    if session.s3.staged:
        _forget_staged(store, [_staged_key(store, session)])
    return chunk.offset


def _staged_key(store: S3BlobStore, session: Session) -> str:
    return store.staged_key(session.id, session.s3.staged_object())


def _forget_staged(store: S3BlobStore, keys: list[str]) -> None:
    """Staged bytes nothing needs any more; what a failure leaves, housekeeping takes."""
    try:
        store.delete_keys(keys)
    except StoreUnavailable:
        log.warning("could not delete staged upload bytes %s", keys)


async def finish(
    reg: Registry,
    session: Session,
    state: UploadState,
    body: AsyncIterator[bytes],
    expected_len: int | None,
    digest: Digest,
    repo: Repository,
    image_name: str,
) -> None:
    """The final PUT: the last bytes, the object completed and verified, the blob
    row committed. Raises DigestInvalid (the session ends) when the bytes differ."""
    chunk = await receive(reg, session, state, body, expected_len, final=True)
    try:
        await _verify_and_commit(reg, chunk, digest, repo, image_name)
    except BaseException:
        _lost(chunk)
        raise


async def _verify_and_commit(
    reg: Registry, chunk: _Chunk, digest: Digest, repo: Repository, image_name: str
) -> None:
    store = _store(reg)
    session = chunk.session
    obj = await reg.run(_complete, reg, chunk, str(digest))
    state = chunk.state
    if chunk.hashing and state.algorithm == digest.algorithm and state.offset == chunk.offset:
        got, size = state.hasher.hexdigest(), chunk.offset
    else:
        # Some bytes went through another node: read the object back.
        got, size = await reg.run(store.hash_key, obj.key, digest.algorithm)
    if got != digest.hex or size != chunk.offset:
        ended = await reg.run(cancel, reg, session.id)
        # Not these bytes' digest; but a PUT racing this one may have committed
        # them under their own (the session's row is then gone, not ended here).
        actual = f"{digest.algorithm}:{got}"
        if obj.private or ended or not await reg.run(_committed, reg, session, actual, obj):
            await reg.run(_discard_object, store, obj.key)
        raise DigestInvalid(
            f"uploaded content does not match digest {digest}", detail={"digest": str(digest)}
        )
    # Taken from the session's state, which the commit drops; only the draft this
    # request added to, and only if the state still holds it.
    draft = chunk.draft if state.draft is chunk.draft else None
    state.draft = None
    try:
        kept = await reg.run(_commit, reg, chunk, str(digest), obj, repo, image_name)
        # Verified and committed: the bytes are the blob's, if this node received
        # all of them. (An upload of a digest the workspace held already leaves the
        # held object, which this node may not have read.)
        if kept and draft is not None and state.offset == draft.got == chunk.offset:
            draft.admit(obj.key)
    finally:
        if chunk.draft is not None:
            chunk.draft.abandon()  # a no-op once admitted


@dataclass(frozen=True, slots=True)
class _Object:
    """The object a final PUT wrote. ``private``: under a generation of its own, which
    no other request can commit; otherwise the session's multipart upload's, which
    a PUT racing this one on another node completes too (AWS S3 answers a second
    CompleteMultipartUpload of the same parts with 200) and may commit."""

    key: str
    generation: str
    private: bool


def _complete(reg: Registry, chunk: _Chunk, digest: str) -> _Object:
    """Write what is left and complete the object."""
    store = _store(reg)
    session = chunk.session
    if chunk.multipart is not None:
        with reg.db.read() as conn:
            recorded = uploads.parts_of(conn, session.id)
        if chunk.rest:
            number = _reserve(reg, session.id)
            chunk.parts.append(_upload_part(reg, chunk, _last(chunk), number))
        parts = sorted(recorded + chunk.parts, key=lambda p: p.number)
        generation, upload_id = chunk.multipart
        key = store.key(session.workspace_id, digest, generation)
        if parts:
            try:
                store.complete_multipart(key, upload_id, [(p.number, p.etag) for p in parts])
            except ObjectGone:
                # Aborted under the session, or completed by a PUT racing this one
                # on another node (which commits it): as for a chunk, 404.
                raise _unknown(session.id) from None
            return _Object(key, generation, private=False)
        store.abort_multipart(key, upload_id)
    generation = new_generation()
    key = store.key(session.workspace_id, digest, generation)
    store.put_bytes(key, _last(chunk))
    return _Object(key, generation, private=True)


def _last(chunk: _Chunk) -> bytes:
    """The upload's last bytes, as they go to the store (and to its draft)."""
    data = bytes(chunk.rest)
    if chunk.draft is not None:
        chunk.draft.add(data)
    return data


def _discard_object(store: S3BlobStore, key: str) -> None:
    try:
        store.delete_keys([key])
    except StoreUnavailable:
        log.warning("could not delete %s; fsck --repair will", key)


def _holds(conn: Connection, session: Session, digest: str, obj: _Object) -> bool:
    """Whether the workspace's blob ``digest`` is ``obj`` (committed by a PUT racing
    this one)."""
    blob = content.workspace_blob(conn, session.workspace_id, digest)
    return blob is not None and blob.generation == obj.generation


def _committed(reg: Registry, session: Session, digest: str, obj: _Object) -> bool:
    with reg.db.read() as conn:
        return _holds(conn, session, digest, obj)


def _commit(
    reg: Registry,
    chunk: _Chunk,
    digest: str,
    obj: _Object,
    repo: Repository,
    image_name: str,
) -> bool:
    """Commit the blob row; returns whether this upload's object is the one kept."""
    store = _store(reg)
    session = chunk.session
    kept = False
    # Whether the object is this request's to delete if it is not kept: not while
    # another request may still commit it.
    ours = obj.private
    try:
        now = now_ms()
        with reg.db.write() as conn:
            current = uploads.get_session(conn, session.id, lock=True)
            if current is None:
                # Ended meanwhile: by a cancel, or by a PUT racing this one that
                # committed this very object. Nobody can commit it any more.
                ours = ours or not _holds(conn, session, digest, obj)
                raise _unknown(session.id)
            if current.s3.version != session.s3.version:
                raise RangeInvalid(f"another chunk of upload {session.id} landed meanwhile")
            image = content.ensure_image(conn, repo, image_name, now)
            _blob, won = content.finish_upload(
                conn, image, digest, chunk.offset, obj.generation, reg.timing, now
            )
            uploads.end_session(conn, session.id)
        kept, ours = won, True
    finally:
        if not kept and ours:
            # The workspace already held these bytes, or the commit failed where
            # nobody else can commit them: they go. One another request may still
            # commit (its session goes on) stays; fsck --repair takes it if none does.
            _discard_object(store, obj.key)
    reg.uploads.drop(session.id)
    if session.s3.staged:
        _forget_staged(store, [_staged_key(store, session)])
    return kept


def cancel(reg: Registry, session_id: str) -> bool:
    """End a session: its row, its multipart upload, its staged bytes. Returns
    whether this call ended it (False: it had ended already)."""
    with reg.db.write() as conn:
        session = uploads.get_session(conn, session_id, lock=True)
        if session is not None:
            uploads.end_session(conn, session_id)
    reg.uploads.drop(session_id)
    if session is not None:
        release(_store(reg), session)
    return session is not None


def release(store: S3BlobStore, session: Session) -> None:
    """Abort a session's multipart upload and delete its staged bytes (its row is
    gone already); what fails here, the housekeeping takes later."""
    if session.s3.multipart_id is not None and session.s3.generation is not None:
        key = store.key(session.workspace_id, "", session.s3.generation)
        try:
            store.abort_multipart(key, session.s3.multipart_id)
        except StoreUnavailable:
            log.warning("could not abort multipart upload of %s; housekeeping will", session.id)
    if session.s3.staged:
        _forget_staged(store, [_staged_key(store, session)])


def expire(reg: Registry, ttl_ms: int) -> int:
    """Housekeeping: end sessions idle for longer than ``ttl_ms`` and release what
    they held, then abort multipart uploads and delete staged bytes that no session
    holds and that are older than the TTL. Returns how many sessions ended."""
    store = _store(reg)
    before = now_ms() - ttl_ms
    with reg.db.write() as conn:
        stale = uploads.expired_s3_sessions(conn, before)
        for session in stale:
            uploads.end_session(conn, session.id)
    for session in stale:
        reg.uploads.drop(session.id)
        release(store, session)
    # Leftovers of nodes killed between an S3 call and its row.
    for _kind, _what, forget in unheld(reg, before):
        forget()
    return len(stale)


def unheld(reg: Registry, before: int) -> list[tuple[str, str, Callable[[], None]]]:
    """Multipart uploads begun and bytes staged before ``before`` that no upload
    session holds: (kind, what, how to get rid of it)."""
    store = _store(reg)
    found: list[tuple[str, str, Callable[[], None]]] = []
    open_uploads = [u for u in store.open_uploads() if u.initiated_ms < before]
    if open_uploads:
        with reg.db.read() as conn:
            held = uploads.multipart_ids(conn)
        for u in open_uploads:
            if u.upload_id not in held:
                found.append(
                    (
                        "multipart upload",
                        f"{u.upload_id} of s3://{store.bucket}/{u.key}",
                        functools.partial(store.abort_multipart, u.key, u.upload_id),
                    )
                )
    staged = [o for o in store.staged_objects() if o.changed_ms < before]
    if staged:
        with reg.db.read() as conn:
            live = uploads.session_ids(conn, sorted({o.session_id for o in staged}))
        for o in staged:
            if o.session_id not in live:
                found.append(
                    (
                        "staged upload bytes",
                        f"s3://{store.bucket}/{o.key}",
                        functools.partial(store.delete_keys, [o.key]),
                    )
                )
    return found
