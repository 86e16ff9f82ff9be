"""The uploads an image delete ended: their sessions' rows went in the delete's
transaction (:func:`app.registry.content.delete_image`, ``purge_image``); once it
has committed, a chunk still streaming into one stops (its request answers 404) and
what the upload held in the store goes: the file of its bytes, or on object storage
its multipart upload and staged bytes (which cost money while they stay).
"""

from __future__ import annotations

from collections.abc import Sequence

from app.registry.blobstore import FileBlobStore
from app.registry.service import Registry
from app.registry.uploads import Session


def release(reg: Registry, sessions: Sequence[Session]) -> None:
    for session in sessions:
        reg.uploads.cancel(session.id)
    if not sessions:
        return
    if isinstance(reg.store, FileBlobStore):
        for session in sessions:
            reg.store.discard_upload(session.id)
        return
    # Imported here: the S3 modules need boto3, which a file-only install lacks.
    from app.registry import s3_uploads
    from app.registry.s3store import S3BlobStore

    assert isinstance(reg.store, S3BlobStore)
    for session in sessions:
        s3_uploads.release(reg.store, session)
