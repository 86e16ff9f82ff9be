"""After a delete commits: tell event-stream subscribers, and wake the GC worker."""

from __future__ import annotations

from app.registry.api.context import ImageAccess
from app.registry.content import Change
from app.registry.service import Registry


def publish_change(reg: Registry, access: ImageAccess, change: Change) -> None:
    for event in change.events:
        reg.events.publish(access.image.workspace_id, event)
    reg.wake_gc()
