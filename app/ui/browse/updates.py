"""Keeping the browse side of the window in step with deletes and restores: the
navigator's counts, the image rows (tags, size, exclusive bytes) and the tags table
follow every delete and every restore from the trash, the window's own and those the
workspace's event stream reports (someone else, a script, a cleanup).

A tag delete takes its tags out of the table at once and corrects the other tags'
"other tags on this digest"; everything else is read again from the server, once
per burst of deletes: the image rows (a delete changes other images' exclusive
bytes too, when they shared a layer with what went) and the tree's counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from PySide6.QtCore import QObject, QTimer

from app.client.berth_api import Image, Tag
from app.client.events import ServerEvent
from app.ui.browse.navigator import Navigator
from app.ui.browse.view import BrowseView
from app.ui.common.window import Window

SETTLE_MS = 250  # the events of one action (a bulk delete) arrive within this


class Browsing(Protocol):
    """What this needs of :class:`~app.ui.browse.controller.BrowseController`."""

    window: Window
    view: BrowseView
    navigator: Navigator
    image: Image | None

    def image_deleted(self, image: Image, by: str | None = None) -> None: ...
    def update_actions(self) -> None: ...
    def show_tag_details(self, tag: Tag | None) -> None: ...


class BrowseUpdates(QObject):
    def __init__(self, browsing: Browsing, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.browsing = browsing
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self._read_again)
        self._tags_again = False  # the shown image's tags are read again with the rest

    def stop(self) -> None:
        """A new connection (or none): what was scheduled for the old one is off."""
        self._timer.stop()
        self._tags_again = False

    # --- what happened ----------------------------------------------------------------
    def on_event(self, event: ServerEvent) -> None:
        """An event of the selected workspace's stream."""
        data = event.data if isinstance(event.data, dict) else {}
        image_id = data.get("image_id")
        if event.type in ("tag_deleted", "manifest_deleted"):
            names = [str(n) for n in data.get("tags") or []]
            if isinstance(image_id, int):
                self.tags_deleted(image_id, names)
        elif event.type == "image_deleted" and isinstance(image_id, int):
            actor = data.get("actor")
            self.image_deleted(image_id, by=str(actor) if actor else None)
        elif event.type == "restored" and isinstance(image_id, int):
            self.restored(image_id)

    def tags_deleted(self, image_id: int, names: Iterable[str]) -> None:
        """Tags of an image are gone (deleted here or elsewhere)."""
        image = self.browsing.image
        if image is not None and image.id == image_id:
            self._take_out_tags(list(names))
        self.changed()

    def image_deleted(self, image_id: int, by: str | None = None) -> None:
        """An image is gone (deleted elsewhere; the window's own deletes go through
        :meth:`BrowseController.image_deleted`, which comes here for the rest)."""
        browsing = self.browsing
        image = browsing.image
        if image is not None and image.id == image_id:
            browsing.image_deleted(image, by=by)
            return
        browsing.view.images_model.remove_keys([image_id])
        self.changed()

    def restored(self, image_id: int) -> None:
        """Tags or a whole image came back from the trash (restored here or elsewhere):
        the image rows and the tree's counts are read again, the tags too when they are
        the shown image's."""
        image = self.browsing.image
        if image is not None and image.id == image_id:
            self._tags_again = True
        self.changed()

    def changed(self) -> None:
        """Something in the workspace changed: read rows and counts again soon."""
        if not self._timer.isActive():
            self._timer.start()

    # --- applying it ------------------------------------------------------------------
    def _take_out_tags(self, names: list[str]) -> None:
        model = self.browsing.view.tags_model
        rows: dict[str, Tag] = {}
        for name in names:
            row = model.row_of(name)
            tag = model.row_object(row) if row is not None else None
            if tag is not None:
                rows[name] = tag
        gone = set(names)
        # Tags that shared a digest with the deleted ones lose them as "other tags".
        lost: dict[str, int] = {}
        for tag in rows.values():
            lost[tag.digest] = lost.get(tag.digest, 0) + 1
        model.remove_keys(names)
        if lost:
            for tag in list(model.rows):
                if tag.digest in lost:
                    model.replace_row(
                        replace(
                            tag,
                            other_tags=tuple(n for n in tag.other_tags if n not in gone),
                            other_tag_count=max(0, tag.other_tag_count - lost[tag.digest]),
                        )
                    )
        browsing = self.browsing
        browsing.update_actions()
        current: Tag | None = browsing.view.tags.current()
        if current is not None and current.digest in lost:
            browsing.show_tag_details(current)  # its manifest's tags changed

    def _read_again(self) -> None:
        browsing = self.browsing
        if browsing.window.backend is None:
            return
        images = browsing.view.images_model
        if images.source is not None:
            images.reload(keep_rows=len(images.rows))
        tags = browsing.view.tags_model
        if self._tags_again and tags.source is not None:
            tags.reload(keep_rows=len(tags.rows))
        self._tags_again = False
        browsing.navigator.refresh_tree()
