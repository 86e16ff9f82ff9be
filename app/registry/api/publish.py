"""After a delete commits: tell event-stream subscribers, remove the data of the
uploads it ended, and wake the GC worker."""

from __future__ import annotations

from app.registry.api.context import ImageAccess
from app.registry.blobstore import FileBlobStore
from app.registry.content import Change
from app.registry.service import Registry


def publish_change(reg: Registry, access: ImageAccess, change: Change) -> None:
    for event in change.events:
        reg.events.publish(access.image.workspace_id, event)
    for session_id in change.ended_uploads:
        # An image delete ended its uploads: their data goes with them, and a chunk
        # streaming into one stops (its request answers 404). On object storage the
        # housekeeping aborts multipart uploads no session holds.
        reg.uploads.cancel(session_id)
        if isinstance(reg.store, FileBlobStore):
            reg.store.discard_upload(session_id)
    reg.wake_gc()
