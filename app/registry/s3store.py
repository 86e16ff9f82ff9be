"""The blob store on S3-compatible object storage (AWS S3, SeaweedFS, MinIO, Ceph).

Through boto3, the AWS SDK: endpoint, region and credentials come from the standard
AWS environment (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, or the shared config files and profiles). boto3 rather
than obstore because an upload's chunks may reach different nodes: its multipart
upload must be continued by id from any process (create / upload part / complete /
abort, and listing the open ones to abort the abandoned), which obstore keeps
inside its in-process writer (figures in ``tests/benchmarks/bench_s3_clients.py``).
boto3 is synchronous, so the registry calls it from worker threads.

Keys, under the optional prefix::

    blobs/<workspace-id>/<generation>    committed objects
    uploads/<session-id>/<name>          bytes staged past an upload's last part

An object's key names its workspace and generation (a UUID, unique per blob row),
not its digest as the filesystem store's path does: a chunked upload's multipart
upload must choose its key when it begins, before any client has said the digest,
and S3 has no rename (Distribution copies every upload into place at its end).
The blob row maps digest to generation; ``fsck`` compares the two by generation.
An object is only visible to clients once its row commits, after its digest was
verified. Objects read whole twice, or uploaded whole through the node, are kept
in the node's memory for the next reads (:mod:`app.registry.blob_cache`, set by
``serve``); deleting one drops its copy.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import boto3
import botocore.config
import botocore.exceptions
from starlette.concurrency import run_in_threadpool

from app.registry.blob_cache import BlobCache, Fill
from app.registry.blobstore import (
    PAGE,
    READ_CHUNK,
    BlobReader,
    ObjectGone,
    ObjectRef,
    StoredObject,
    StoreUnavailable,
    Stray,
)

P = ParamSpec("P")
T = TypeVar("T")

# S3 refuses parts under 5 MiB, except the last one of an upload.
MIN_PART = 5 * 1024 * 1024
# At most 10,000 parts: parts grow by this much every 1,000, so one upload may
# reach ~430 GiB while the usual layer is a few parts.
PART_STEP = 8 * 1024 * 1024
MAX_PARTS = 10_000
DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys
PRESIGN_S = 20 * 60


def part_size(number: int) -> int:
    """The size of part ``number`` (1-based) of a multipart upload."""
    return PART_STEP * (1 + (number - 1) // 1000)


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _not_found(exc: botocore.exceptions.ClientError) -> bool:
    # A missing bucket is the store gone, not an object: it is unavailable (503), and
    # nothing may conclude from it that a blob or an upload is gone (which tells
    # clients "unknown" and has them start again). A HEAD's 404 has no body to tell.
    if _code(exc) == "NoSuchBucket":
        return False
    return _status(exc) == 404 or _code(exc) in ("NoSuchKey", "NotFound", "404", "NoSuchUpload")


def _translated(fn: Callable[P, T]) -> Callable[P, T]:
    """S3 failures become :class:`StoreUnavailable` (503 to clients, a line at the
    command line); the expected "not found"s are handled by each method."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except botocore.exceptions.ClientError as exc:
            raise StoreUnavailable(f"object store: {_code(exc) or _status(exc)}: {exc}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreUnavailable(f"object store: {exc}") from exc

    return wrapper


@dataclass(frozen=True, slots=True)
class OpenUpload:
    """A multipart upload the bucket holds open."""

    key: str
    upload_id: str
    initiated_ms: int


@dataclass(frozen=True, slots=True)
class Staged:
    """An object under ``uploads/``."""

    key: str
    session_id: str
    changed_ms: int


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


class S3BlobStore:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        # Set by `serve`: the node's copies of objects it read whole.
        self.cache: BlobCache | None = None
        endpoint = client.meta.endpoint_url
        self.description = f"s3://{bucket}/{prefix} at {endpoint}"
        self.identity = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    @classmethod
    def connect(cls, bucket: str, prefix: str) -> S3BlobStore:
        """A store on ``bucket``, checked: a missing bucket, no or wrong credentials
        or an unreachable endpoint raise :class:`StoreUnavailable` with one line."""
        if not bucket:
            raise ValueError("--blob-store s3://BUCKET[/PREFIX] needs a bucket")
        session = boto3.session.Session()
        config = botocore.config.Config(
            max_pool_connections=64,
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=5,
            read_timeout=60,
            tcp_keepalive=True,
        )
        client = session.client("s3", config=config)
        endpoint = str(client.meta.endpoint_url)
        if "amazonaws.com" not in endpoint:
            # Other S3 implementations take bucket names in the path, not the host.
            client = session.client(
                "s3", config=config.merge(botocore.config.Config(s3={"addressing_style": "path"}))
            )
        store = cls(client, bucket, prefix)
        store.check()
        return store

    def check(self) -> None:
        where = f"bucket {self.bucket!r} at {self.client.meta.endpoint_url}"
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.NoCredentialsError:
            raise StoreUnavailable(
                f"no credentials for {where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            ) from None
        except botocore.exceptions.ClientError as exc:
            status = _status(exc)
            if status == 404:
                raise StoreUnavailable(f"{where} does not exist") from None
            if status in (401, 403):
                raise StoreUnavailable(
                    f"access to {where} denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                ) from None
            raise StoreUnavailable(f"{where}: {_code(exc) or status}") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreUnavailable(f"cannot use {where}: {exc}") from None

    # keys ---------------------------------------------------------------------
    def key(self, workspace_id: int, digest: str, generation: str) -> str:
        """An object's key (``digest`` is not part of it; see the module docstring)."""
        return f"{self.prefix}blobs/{workspace_id}/{generation}"

    def staged_key(self, session_id: str, name: str) -> str:
        return f"{self.prefix}uploads/{session_id}/{name}"

    # objects -------------------------------------------------------------------
    @_translated
    def open_reader(
        self, workspace_id: int, digest: str, generation: str, start: int, length: int
    ) -> BlobReader:
        if length <= 0:
            return _EmptyReader()
        key = self.key(workspace_id, digest, generation)
        cache = self.cache
        if cache is not None and (cached := cache.reader(key, start, length)) is not None:
            return cached
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
            )
        except botocore.exceptions.ClientError as exc:
            if _not_found(exc):
                raise ObjectGone(key) from None
            raise
        fill = None
        if cache is not None and start == 0:
            # "bytes 0-N/TOTAL": this read is the whole object when N + 1 == TOTAL.
            # A store that answers a range covering everything with the whole
            # object (200) sends no Content-Range: its length is the object's.
            total = str(response.get("ContentRange", "")).rpartition("/")[2]
            whole = int(total) if total.isdigit() else response.get("ContentLength")
            if whole == length and cache.read_before(key, length):
                fill = cache.fill(key, length, digest)
        return _S3Reader(response["Body"], fill)

    @_translated
    def read_bytes(
        self, workspace_id: int, digest: str, generation: str, limit: int
    ) -> bytes | None:
        if limit <= 0:
            return b""
        try:
            response = self.client.get_object(
                Bucket=self.bucket,
                Key=self.key(workspace_id, digest, generation),
                Range=f"bytes=0-{limit - 1}",
            )
        except botocore.exceptions.ClientError as exc:
            if _not_found(exc) or _status(exc) == 416:  # 416: an empty object
                return None if _not_found(exc) else b""
            raise
        data: bytes = response["Body"].read()
        return data

    @_translated
    def put_object(self, workspace_id: int, digest: str, generation: str, data: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self.key(workspace_id, digest, generation), Body=data
        )

    @_translated
    def delete_object(self, workspace_id: int, digest: str, generation: str) -> bool:
        # S3 answers a delete of a missing key with success too.
        key = self.key(workspace_id, digest, generation)
        self._forget([key])
        self.client.delete_object(Bucket=self.bucket, Key=key)
        return True

    def delete_objects(self, refs: Iterable[ObjectRef]) -> None:
        self.delete_keys([self.key(r.workspace_id, r.digest, r.generation) for r in refs])

    @_translated
    def delete_keys(self, keys: list[str]) -> None:
        self._forget(keys)
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            if len(batch) == 1:
                self.client.delete_object(Bucket=self.bucket, Key=batch[0])
                continue
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = [e for e in response.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                raise StoreUnavailable(
                    f"object store: {len(errors)} deletes failed, first: {errors[0]}"
                )

    def _forget(self, keys: list[str]) -> None:
        if self.cache is not None:
            for key in keys:
                self.cache.forget(key)

    @_translated
    def exists(self, workspace_id: int, digest: str, generation: str) -> bool:
        try:
            self.client.head_object(
                Bucket=self.bucket, Key=self.key(workspace_id, digest, generation)
            )
        except botocore.exceptions.ClientError as exc:
            if _not_found(exc):
                return False
            raise
        return True

    @_translated
    def object_pages(self) -> Iterator[list[StoredObject | Stray]]:
        paginator = self.client.get_paginator("list_objects_v2")
        root = self.prefix + "blobs/"
        for page in paginator.paginate(
            Bucket=self.bucket, Prefix=root, PaginationConfig={"PageSize": PAGE}
        ):
            out: list[StoredObject | Stray] = []
            for item in page.get("Contents", []):
                key = str(item["Key"])
                parts = key[len(root) :].split("/")
                if len(parts) != 2 or not parts[0].isdigit() or not _is_uuid(parts[1]):
                    out.append(Stray(f"s3://{self.bucket}/{key}"))
                    continue
                out.append(
                    StoredObject(
                        int(parts[0]),
                        None,
                        parts[1],
                        key,
                        int(item["Size"]),
                        _ms(item["LastModified"]),
                    )
                )
            yield out

    def remove_orphan(self, obj: StoredObject) -> bool:
        try:
            self.delete_keys([str(obj.path)])
        except StoreUnavailable:
            return False
        return True

    @_translated
    def presigned_get(self, workspace_id: int, digest: str, generation: str) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.key(workspace_id, digest, generation)},
            ExpiresIn=PRESIGN_S,
        )
        return url

    def hash_object(
        self, workspace_id: int, digest: str, generation: str, algorithm: str
    ) -> str | None:
        try:
            return self.hash_key(self.key(workspace_id, digest, generation), algorithm)[0]
        except ObjectGone:
            return None

    @_translated
    def hash_key(self, key: str, algorithm: str) -> tuple[str, int]:
        """(hex digest, size) of an object, read as a stream."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except botocore.exceptions.ClientError as exc:
            if _not_found(exc):
                raise ObjectGone(key) from None
            raise
        hasher = hashlib.new(algorithm)
        size = 0
        for chunk in body.iter_chunks(READ_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
        return hasher.hexdigest(), size

    # uploads -------------------------------------------------------------------
    @_translated
    def create_multipart(self, key: str) -> str:
        upload_id: str = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)[
            "UploadId"
        ]
        return upload_id

    @_translated
    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """The part's ETag; raises :class:`ObjectGone` when the multipart upload was
        aborted (its upload cancelled, or its image deleted, meanwhile)."""
        try:
            etag: str = self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )["ETag"]
        except botocore.exceptions.ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                raise ObjectGone(key) from None
            raise
        return etag

    @_translated
    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Raises :class:`ObjectGone` when there is no such multipart upload (any
        more): aborted, or completed already."""
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]},
            )
        except botocore.exceptions.ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                raise ObjectGone(key) from None
            raise

    @_translated
    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except botocore.exceptions.ClientError as exc:
            if not _not_found(exc):
                raise

    @_translated
    def open_uploads(self) -> Iterator[OpenUpload]:
        """Every multipart upload open under the store's prefix."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + "blobs/"):
            for item in page.get("Uploads", []):
                yield OpenUpload(str(item["Key"]), str(item["UploadId"]), _ms(item["Initiated"]))

    @_translated
    def put_staged(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    @_translated
    def get_staged(self, key: str) -> bytes:
        """Raises :class:`ObjectGone` when the object is not there."""
        try:
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except botocore.exceptions.ClientError as exc:
            if _not_found(exc):
                raise ObjectGone(key) from None
            raise
        return data

    @_translated
    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    @_translated
    def staged_objects(self) -> Iterator[Staged]:
        paginator = self.client.get_paginator("list_objects_v2")
        root = self.prefix + "uploads/"
        for page in paginator.paginate(Bucket=self.bucket, Prefix=root):
            for item in page.get("Contents", []):
                key = str(item["Key"])
                session_id = key[len(root) :].split("/", 1)[0]
                yield Staged(key, session_id, _ms(item["LastModified"]))


class _S3Reader:
    """An object's body; its chunks are kept in the node's cache as they go when
    ``fill``."""

    def __init__(self, body: Any, fill: Fill | None = None) -> None:
        self.body = body
        self.fill = fill

    def _next(self) -> bytes:
        chunk: bytes = self.body.read(READ_CHUNK)
        if chunk and self.fill is not None:
            self.fill.add(chunk)
        return chunk

    async def chunks(self) -> AsyncIterator[bytes | memoryview]:
        try:
            while True:
                chunk = await run_in_threadpool(self._next)
                if not chunk:
                    break
                yield chunk
            if self.fill is not None:
                self.fill.done()
                await self.fill.wait()
        finally:
            self.body.close()
            if self.fill is not None:
                self.fill.abandon()  # a no-op once done


class _EmptyReader:
    async def chunks(self) -> AsyncIterator[bytes | memoryview]:
        nothing: tuple[bytes, ...] = ()
        for chunk in nothing:  # an async generator that yields nothing
            yield chunk
