"""Browsing: what the navigator's selection lists in the tables, the image and tag
shown, the actions' state, copying pull commands and digests, and deleting tags
and images (confirmed, then run in the bulk panel).

A registry kind that deletes its own way (a plain OCI registry) registers a
:class:`DeleteHandler`; the confirmation and the bulk panel stay the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from app.client.berth_api import DeleteImpact, Image, Tag
from app.client.errors import ClientError, NotFound
from app.core.permissions import Permission
from app.ui.backends.deletion import BulkDelete, BulkOutcome, Deleted, DeletePlan
from app.ui.backends.protocol import Backend, Scope
from app.ui.browse.images_model import PROJECT
from app.ui.browse.navigator import Navigator
from app.ui.browse.navigator_model import Node
from app.ui.browse.updates import BrowseUpdates
from app.ui.browse.view import BrowseView
from app.ui.common import confirm_delete
from app.ui.common.actions import Context, install_context_menu
from app.ui.common.window import Window


class DeleteHandler(Protocol):
    """Deletes for a registry kind that cannot take the generic path."""

    def handles(self, backend: Backend | None) -> bool: ...
    async def delete_tags(self, backend: Backend, image: Image, tags: list[Tag]) -> None: ...
    async def delete_image(self, backend: Backend, image: Image) -> None: ...


def restorable(plan: DeletePlan, impact: DeleteImpact | None) -> bool:
    """Whether the trash may hold what ``plan`` deleted: not where the registry keeps
    none, nor where the server's answer said its trash is off (unknown: it may)."""
    return plan.trash and (impact is None or impact.trash_retention_s > 0)


class BrowseController(QObject):
    scopeChanged = Signal(object)  # Scope | None: what the images table lists
    deleted = Signal(object)  # Deleted: a confirmed delete of this window removed it

    def __init__(
        self, window: Window, view: BrowseView, navigator: Navigator, parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.window = window
        self.view = view
        self.navigator = navigator
        self._parent = parent  # the confirmations' parent
        self.scope: Scope | None = None
        self.image: Image | None = None
        self.permissions: dict[int, Permission] = {}  # image id → permission there
        self.delete_handlers: list[DeleteHandler] = []
        self._restore_image: int | None = None
        self.updates = BrowseUpdates(self, self)
        self._wire()

    def _wire(self) -> None:
        a, b = self.window.acts, self.view
        a.find.triggered.connect(self.focus_filter)
        a.copy_pull.triggered.connect(self.copy_pull_command)
        a.copy_digest.triggered.connect(self.copy_digest)
        a.delete_tags.triggered.connect(self.delete_selected_tags)
        a.delete_image.triggered.connect(self.delete_current_image)
        self.navigator.currentChanged.connect(self._node_changed)
        b.images.currentChanged.connect(self._image_changed)
        b.tags.currentChanged.connect(self._tag_changed)
        b.tags.selectionChanged.connect(self.update_actions)
        b.images_model.pageLoaded.connect(self._restore_image_selection)
        b.bulk.cancelRequested.connect(
            lambda: self.window.statusBar().showMessage("Cancelling…", 3000)
        )
        # Context menus: the same actions as toolbar and menus.
        for widget, items in (
            (b.tags.view, [a.copy_pull, a.copy_digest, None, a.delete_tags, a.delete_image, None,
                           a.refresh]),
            (b.images.view, [a.copy_pull, None, a.delete_image, None, a.refresh]),
            (self.navigator.tree, [a.refresh]),
        ):  # fmt: skip
            install_context_menu(widget, items)
        # Del deletes tags only where tags have focus; Shift+Del the image from either table.
        a.delete_tags.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        a.delete_image.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        QWidget.setTabOrder(self.navigator.tree, b.images.filter)

    # === the connection ==============================================================
    def connected(self, _backend: Backend | None) -> None:
        self.updates.stop()

    def forget(self) -> None:
        """The connection is going: nothing selected, nothing listed."""
        self.scope = None
        self.image = None
        self.permissions.clear()
        self.navigator.clear()
        self.view.images_model.set_source(None)
        self.view.tags_model.set_source(None)
        self.view.details.show_nothing()

    async def restore_selection(self) -> None:
        """Select where the last session was (tree node, image)."""
        settings, navigator = self.window.settings, self.navigator
        path = settings.last_path()
        self._restore_image = settings.last_image()
        node = await navigator.reveal(path)
        if node is navigator.nav_model.root:
            if not node.children:
                return
            node = node.children[0]
        navigator.select_path(node.path)

    # === images and tags =============================================================
    def _node_changed(self, node: Node | None) -> None:
        self.set_scope(node.scope if node is not None else None)
        if node is not None:
            self.window.settings.set_last_path(node.path)

    def set_scope(self, scope: Scope | None) -> None:
        if scope == self.scope:
            return
        self.scope = scope
        backend = self.window.backend
        images = self.view.images
        if scope is None or backend is None:
            images.title.setText("Images")
            self.view.images_model.set_source(None)
        else:
            images.title.setText(f"Images in {scope.label}")

            async def source(
                cursor: str | None, sort: str | None, q: str | None, limit: int
            ) -> Any:
                return await backend.images(scope, sort=sort, q=q, limit=limit, cursor=cursor)

            self.view.images_model.set_source(source)
        self._image_changed(None)
        self.scopeChanged.emit(scope)

    def _restore_image_selection(self) -> None:
        wanted = self._restore_image
        if wanted is None:
            return
        if self.view.images_model.row_of(wanted) is not None:
            self._restore_image = None
            self.view.images.select_keys([wanted], current=wanted)

    def _image_changed(self, image: Image | None) -> None:
        if image is not None and self.image is not None and image.id == self.image.id:
            return
        self.image = image
        backend = self.window.backend
        tags = self.view.tags
        self.view.details.show_nothing()
        self.window.ops.cancel("details")
        if image is None or backend is None:
            tags.title.setText("Tags")
            self.view.tags_model.set_source(None)
            self.update_actions()
            return
        self.window.settings.set_last_image(image.id)
        tags.title.setText(f"Tags of {image.full_name}")
        tags.title.setToolTip(backend.pull_reference(image))

        async def source(cursor: str | None, sort: str | None, q: str | None, limit: int) -> Any:
            return await backend.tags(image, sort=sort, q=q, limit=limit, cursor=cursor)

        self.view.tags_model.set_source(source, server_sort=backend.capabilities.server_sort)
        identity = self.window.identity
        if identity is not None and identity.superuser:
            self.permissions[image.id] = Permission.ADMIN
        elif image.id not in self.permissions:
            known = self.navigator.repo_permissions.get((image.workspace, image.repository))
            if known is not None:
                self.permissions[image.id] = known  # from the tree; the detail confirms it
            self.window.ops.run(
                backend.image(image),
                name="image-detail",
                on_done=self._image_detail,
                on_error=self._image_detail_failed(image),
            )
        self.update_actions()

    def _image_detail(self, detail: Image) -> None:
        if detail.permission is not None:
            self.permissions[detail.id] = detail.permission
        self.view.images_model.replace_row(detail)
        self.update_actions()

    def _image_detail_failed(self, image: Image) -> Any:
        def handle(error: ClientError) -> bool:
            if isinstance(error, NotFound):
                self.view.images_model.remove_keys([image.id])
            return False

        return handle

    def _tag_changed(self, tag: Tag | None) -> None:
        self.update_actions()
        backend, image = self.window.backend, self.image
        details = self.view.details
        if tag is None or backend is None or image is None:
            self.window.ops.cancel("details")
            details.show_nothing()
            return
        details.show_loading(tag)
        if not tag.digest:
            self.window.ops.cancel("details")
            return  # a plain registry's row before its manifest was read: shown when it is
        self.window.ops.run(
            backend.manifest(image, tag.digest),
            name="details",
            on_done=lambda manifest: details.show_manifest(tag, manifest),
        )

    def update_actions(self) -> None:
        """Enable and explain the actions again (capabilities found, selection)."""
        image, acts, backend = self.image, self.window.acts, self.window.backend
        acts.update(
            Context(
                connected=backend is not None,
                image=image,
                permission=self.permissions.get(image.id) if image is not None else None,
                selected_tags=len(self.view.tags.view.selectionModel().selectedRows())
                if image is not None
                else 0,
            )
        )
        if self.view.bulk.running:
            acts.delete_tags.setEnabled(False)
            acts.delete_image.setEnabled(False)
        blocked = backend.capabilities.delete_blocked if backend is not None else None
        if blocked:  # deletes are off on this registry: say so where the actions are
            for action in (acts.delete_tags, acts.delete_image):
                acts.explain_blocked(action, blocked, "deletes are off here")

    def show_tag_details(self, tag: Tag | None) -> None:
        """Show ``tag``'s details again (its row was completed or re-measured)."""
        self._tag_changed(tag)

    def show_project_column(self, shown: bool) -> None:
        """A registry without projects (plain OCI): an always-empty column only takes room."""
        self.view.images.view.setColumnHidden(PROJECT, not shown)

    def current_tag(self) -> Tag | None:
        tag = self.view.tags.current()
        return tag if isinstance(tag, Tag) else None

    def shown_digest(self) -> str:
        """The digest the details pane shows."""
        return self.view.details.fields["digest"].text()

    # === actions =====================================================================
    def refresh(self) -> None:
        """Read the tables again (F5), keeping rows, selection and the image shown."""
        images = self.view.images_model
        images.reload(keep_rows=len(images.rows))
        tags = self.view.tags_model
        tags.reload(keep_rows=len(tags.rows))
        if self.image is not None:
            self.permissions.pop(self.image.id, None)
            current, self.image = self.image, None
            self._image_changed_keep_tags(current)

    def _image_changed_keep_tags(self, image: Image) -> None:
        """Re-check permission and details of the image after F5, without
        dropping the tag selection (the tags model reload keeps it)."""
        self.image = image
        backend = self.window.backend
        if backend is None:
            return
        identity = self.window.identity
        if identity is not None and identity.superuser:
            self.permissions[image.id] = Permission.ADMIN
        else:
            self.window.ops.run(
                backend.image(image),
                name="image-detail",
                on_done=self._image_detail,
                on_error=self._image_detail_failed(image),
            )
        self._tag_changed(self.view.tags.current())

    def focus_filter(self) -> None:
        focus = QGuiApplication.focusObject()
        b, navigator = self.view, self.navigator
        if focus in (navigator.tree, navigator.tree_filter):
            navigator.tree_filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
            navigator.tree_filter.selectAll()
        elif focus in (b.images.view, b.images.filter) or self.image is None:
            b.images.focus_filter()
        else:
            b.tags.focus_filter()

    def copy_pull_command(self) -> None:
        backend, image = self.window.backend, self.image
        if backend is None or image is None:
            return
        tags: list[Tag] = self.view.tags.selected()
        refs = [backend.pull_reference(image, tag=t.name) for t in tags] or [
            backend.pull_reference(image)
        ]
        text = "\n".join(f"docker pull {ref}" for ref in refs)
        QGuiApplication.clipboard().setText(text)
        self.window.statusBar().showMessage(
            f"Copied: {text}" if len(refs) == 1 else f"Copied {len(refs)} pull commands", 4000
        )

    def copy_digest(self) -> None:
        tags: list[Tag] = self.view.tags.selected()
        digests = list(dict.fromkeys(t.digest for t in tags))
        if digests:
            QGuiApplication.clipboard().setText("\n".join(digests))
            self.window.statusBar().showMessage(
                f"Copied {digests[0]}" if len(digests) == 1 else f"Copied {len(digests)} digests",
                4000,
            )

    # === deleting ====================================================================
    def _handler(self, backend: Backend) -> DeleteHandler | None:
        return next((h for h in self.delete_handlers if h.handles(backend)), None)

    def delete_selected_tags(self) -> asyncio.Task[Any] | None:
        if not self.window.acts.delete_tags.isEnabled():
            return None
        return self.delete_tags(self.view.tags.selected())

    def delete_tags(self, tags: Sequence[Tag]) -> asyncio.Task[Any] | None:
        """Confirm and delete ``tags`` of the current image. The server decides
        whether it is allowed: the disabled action only mirrors that."""
        image, backend = self.image, self.window.backend
        if image is None or backend is None or not tags or self.view.bulk.running:
            return None
        return self.window.ops.run(self._delete_tags(backend, image, list(tags)), name="delete")

    async def _impact(self, plan: DeletePlan) -> tuple[Any, str | None]:
        backend = self.window.backend
        if backend is None or not backend.capabilities.delete_impact:
            return None, "this registry cannot tell"
        try:
            impact = await backend.delete_impact(
                plan.image.workspace,
                tags=[(plan.image, t.name) for t in plan.tags] if not plan.whole_image else (),
                images=[plan.image] if plan.whole_image else (),
            )
        except ClientError as exc:
            return None, exc.message
        return impact, None

    async def _delete_tags(self, backend: Backend, image: Image, tags: list[Tag]) -> None:
        handler = self._handler(backend)
        if handler is not None:
            await handler.delete_tags(backend, image, tags)
            return
        plan = DeletePlan(image, tuple(tags))
        impact, impact_error = await self._impact(plan)
        if not await confirm_delete.confirm_delete(self._parent, plan, impact, impact_error):
            return
        job = BulkDelete(
            backend,
            image,
            plan.names,
            on_progress=self.bulk_progress,
            on_chunk=lambda names: self.tags_removed(image, names),
            expected={t.name: t.digest for t in plan.tags},
        )
        outcome = await self.run_bulk(backend, image, job)
        if outcome.deleted:
            digests = {t.name: t.digest for t in plan.tags}
            gone = tuple((name, digests[name]) for name in outcome.deleted if name in digests)
            self.deleted.emit(Deleted(image, gone, restorable=restorable(plan, impact)))

    def bulk_progress(self, done: int, total: int) -> None:
        """A running delete's progress, for the bulk panel."""
        self.view.bulk.advance(done, total)

    async def run_bulk(self, backend: Backend, image: Image, job: BulkDelete) -> BulkOutcome:
        """Run a confirmed delete in the bulk panel: progress, cancel, what failed."""
        panel = self.view.bulk
        panel.start(job)
        self.update_actions()
        try:
            outcome = await job.run()
        finally:
            if panel.job is job:
                panel.job = None
            self.update_actions()
        panel.finish(outcome)
        self.window.statusBar().showMessage(outcome.summary, 8000)
        if outcome.stopped_by is not None:
            self.window.show_failure(outcome.stopped_by, "delete")
        return outcome

    def tags_removed(self, image: Image, names: list[str]) -> None:
        """Tags of ``image`` were deleted from here: the tables and the tree follow."""
        self.updates.tags_deleted(image.id, names)

    def delete_current_image(self) -> asyncio.Task[Any] | None:
        if not self.window.acts.delete_image.isEnabled():
            return None
        return self.delete_image(self.image)

    def delete_image(self, image: Image | None) -> asyncio.Task[Any] | None:
        backend = self.window.backend
        if image is None or backend is None:
            return None
        return self.window.ops.run(
            self._delete_image(backend, image),
            name="delete",
            on_error=self._image_detail_failed(image),
        )

    async def _delete_image(self, backend: Backend, image: Image) -> None:
        handler = self._handler(backend)
        if handler is not None:
            await handler.delete_image(backend, image)
            return
        plan = DeletePlan(image, whole_image=True)
        impact, impact_error = await self._impact(plan)
        if not await confirm_delete.confirm_delete(self._parent, plan, impact, impact_error):
            return
        await backend.delete_image(image)
        self.image_deleted(image)
        self.deleted.emit(Deleted(image, whole_image=True, restorable=restorable(plan, impact)))

    def image_deleted(self, image: Image, by: str | None = None) -> None:
        """``image`` is gone (deleted from here, or by ``by`` elsewhere)."""
        self.window.statusBar().showMessage(
            f"Image {image.full_name} was deleted by {by}." if by
            else f"Deleted image {image.full_name}.", 8000
        )  # fmt: skip
        if self.image is not None and self.image.id == image.id:
            self.view.images.clear_selection()
            self._image_changed(None)
        self.updates.image_deleted(image.id)
