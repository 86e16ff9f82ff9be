"""After a delete commits: tell event-stream subscribers, remove the data of the
uploads it ended, and wake the GC worker."""

from __future__ import annotations

from app.registry import ended_uploads
from app.registry.api.context import ImageAccess
from app.registry.content import Change
from app.registry.service import Registry


def publish_change(reg: Registry, access: ImageAccess, change: Change) -> None:
    for event in change.events:
        reg.events.publish(access.image.workspace_id, event)
    ended_uploads.release(reg, change.ended_uploads)
    reg.wake_gc()
