"""What the main window does differently for an "OCI registry" connection.

The window keeps its generic flows; this part adds what a plain registry needs:

* the capability banner and a summary in the status bar (detected once per
  connection), and the delete actions greyed with the reason where deletes are off;
* repository names added by hand (catalog off or hidden), remembered by the profile;
* rows completed as their details arrive: tag counts in the images table, digest,
  size, platforms and sibling tags in the tags table (bounded concurrency, no
  waiting for the slowest request, stale fills cancelled with the selection);
* the sizes and sharing its storage scan measured (the scan itself is the storage
  tab's, :mod:`app.ui.storage.oci_view`), shown in the tables and details;
* deleting the way the registry allows: planned from every tag's current digest,
  confirmed with a choice where the registry deletes only by digest and other
  tags share the digest (keep them: placeholder, the default; or delete them too),
  then run step by step with progress and cancel.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLabel, QLineEdit, QTreeView, QWidget

from app.client.berth_api import Image, Tag
from app.client.errors import ClientError
from app.ui.backends.deletion import BulkDelete, BulkOutcome, DeleteMethod, DeletePlan
from app.ui.backends.oci import NO_SCAN, OciBackend, PreparedTagDelete
from app.ui.backends.oci_deletion import DIGEST, PLACEHOLDER, DeleteStep, StepsDelete, TagDeletion
from app.ui.backends.protocol import Backend
from app.ui.common import confirm_delete
from app.ui.common.formatting import counted
from app.ui.common.table_model import PagedTableModel
from app.ui.common.window import Window
from app.ui.oci import repositories_dialog as oci_repositories_dialog
from app.ui.oci.banner import CapabilityBanner, summary

TAGS_FILL = "oci-tags-fill"
IMAGES_FILL = "oci-images-fill"
GC_NOTE = (
    "The registry frees deleted content only when its own garbage collector runs "
    "(CNCF Distribution: `registry garbage-collect`)."
)


def _names(tags: tuple[str, ...], limit: int = 8) -> str:
    shown = ", ".join(tags[:limit])
    return shown + (f" and {len(tags) - limit} more" if len(tags) > limit else "")


def delete_methods(prepared: PreparedTagDelete, deletion: TagDeletion) -> tuple[DeleteMethod, ...]:
    """The choice the confirmation offers, safe way first."""
    n = len(deletion.selected)
    also = deletion.also_deleted[DIGEST]
    return (
        DeleteMethod(
            PLACEHOLDER,
            f"Delete only the selected tag{'s' if n != 1 else ''}; keep the other tags (safe)",
            "This registry deletes only by digest. Berth points each selected tag at a tiny "
            "placeholder manifest and deletes that placeholder, so the other tags on the same "
            "manifest stay and still pull.",
            (),
            prepared.impacts[PLACEHOLDER],
        ),
        DeleteMethod(
            DIGEST,
            "Delete the manifest by digest, with every tag on it",
            f"The manifest goes, and with it {_names(also)}, which name it too.",
            also,
            prepared.impacts[DIGEST],
        ),
    )


class Tables(Protocol):
    """The browse tables (:class:`~app.ui.browse.view.BrowseView`)."""

    @property
    def images_model(self) -> PagedTableModel[Image]: ...
    @property
    def tags_model(self) -> PagedTableModel[Tag]: ...


class Browsing(Protocol):
    """What this needs of the browse feature
    (:class:`~app.ui.browse.controller.BrowseController`)."""

    @property
    def view(self) -> Tables: ...
    @property
    def image(self) -> Image | None: ...

    def current_tag(self) -> Tag | None: ...
    def shown_digest(self) -> str: ...
    def show_tag_details(self, tag: Tag | None) -> None: ...
    def tags_removed(self, image: Image, names: list[str]) -> None: ...
    def image_deleted(self, image: Image, by: str | None = None) -> None: ...
    def show_project_column(self, shown: bool) -> None: ...
    def bulk_progress(self, done: int, total: int) -> None: ...
    async def run_bulk(self, backend: Backend, image: Image, job: BulkDelete) -> BulkOutcome: ...


class Tree(Protocol):
    """What this needs of the navigator (:class:`~app.ui.browse.navigator.Navigator`)."""

    @property
    def tree(self) -> QTreeView: ...
    @property
    def tree_filter(self) -> QLineEdit: ...

    def expand_top(self) -> None: ...
    def refresh_tree(self) -> None: ...


class OciController(QObject):
    # A delete ran (done, failed or cancelled): the scanned figures may have changed.
    deletesRan = Signal()

    def __init__(self, window: Window, browsing: Browsing, tree: Tree, parent: QWidget) -> None:
        super().__init__(parent)
        self.window = window
        self.browsing = browsing
        self.tree = tree
        self._parent = parent  # dialogs' parent
        self.banner = CapabilityBanner(parent)
        self.banner.addRepositoriesRequested.connect(self.edit_repositories)
        self.status = QLabel(window.statusBar())
        self.status.setObjectName("capabilityStatus")
        self.status.setAccessibleName("Registry capabilities")
        self.status.hide()
        window.statusBar().addPermanentWidget(self.status)
        self.repositories_action = QAction("Repositories added by &hand…", parent)
        tip = "Browse repositories the registry's catalog does not list"
        self.repositories_action.setToolTip(tip)
        self.repositories_action.setStatusTip(tip)
        self.repositories_action.setVisible(False)
        self.repositories_action.triggered.connect(self.edit_repositories)
        tree.tree.addAction(self.repositories_action)
        self._tree_placeholder = tree.tree_filter.placeholderText()
        self._tags_generation = -1
        self._tags_done: set[str] = set()
        self._images_generation = -1
        self._images_done: set[int] = set()
        tables = browsing.view
        tables.tags_model.pageLoaded.connect(self.fill_tags)
        tables.tags_model.modelReset.connect(lambda: window.ops.cancel(TAGS_FILL))
        tables.images_model.pageLoaded.connect(self.fill_images)
        tables.images_model.modelReset.connect(lambda: window.ops.cancel(IMAGES_FILL))

    @property
    def backend(self) -> OciBackend | None:
        backend = self.window.backend
        return backend if isinstance(backend, OciBackend) else None

    def handles(self, backend: Backend | None) -> bool:
        return isinstance(backend, OciBackend)

    # --- connecting -------------------------------------------------------------------
    def connected(self, backend: Backend | None) -> None:
        window = self.window
        for name in (TAGS_FILL, IMAGES_FILL, "oci-repositories"):
            window.ops.cancel(name)
        oci = backend if isinstance(backend, OciBackend) else None
        self.show_capabilities()
        self.repositories_action.setVisible(oci is not None)
        # A plain registry has no projects: an always-empty column only takes room.
        self.browsing.show_project_column(oci is None)
        self.tree.tree_filter.setPlaceholderText(
            "Filter namespaces" if oci is not None else self._tree_placeholder
        )
        if oci is not None:
            self.tree.expand_top()

    def show_capabilities(self) -> None:
        oci = self.backend
        found = oci.found if oci is not None else None
        self.banner.show_notes(oci.registry if oci is not None else "", found)
        if found is None:
            self.status.hide()
        else:
            text = summary(found)
            self.status.setText(text)
            self.status.setToolTip("\n".join(found.notes) or text)
            self.status.setAccessibleDescription(text)
            self.status.show()
        self.window.update_actions()

    # --- repositories added by hand ---------------------------------------------------
    def edit_repositories(self) -> None:
        if self.backend is not None:
            self.window.ops.run(self._edit_repositories(self.backend), name="oci-repositories")

    async def _edit_repositories(self, oci: OciBackend) -> None:
        window = self.window
        catalog = oci.found.catalog if oci.found is not None else True
        names = await oci_repositories_dialog.ask_repository_names(
            self._parent, oci.registry, oci.profile.repositories, catalog
        )
        if names is None or window.backend is not oci:
            return
        oci.set_repositories(names)
        profile = oci.profile
        saved = window.settings.profiles()
        window.settings.set_profiles(
            [replace(p, repositories=profile.repositories) if p.name == profile.name else p
             for p in saved]
        )  # fmt: skip
        window.profile = profile
        await oci.detect_capabilities()  # a first name lets it probe deletes now
        self.show_capabilities()
        window.refresh()

    # --- rows completed as details arrive ----------------------------------------------
    def fill_tags(self) -> None:
        oci, image = self.backend, self.browsing.image
        model = self.browsing.view.tags_model
        if oci is None or image is None:
            return
        generation = model.state.generation
        if generation != self._tags_generation:
            self._tags_generation, self._tags_done = generation, set()
        names = [t.name for t in model.rows if t.name not in self._tags_done]
        if names:
            self.window.ops.run(self._fill_tags(oci, image, generation, names), name=TAGS_FILL)

    async def _fill_tags(
        self, oci: OciBackend, image: Image, generation: int, names: list[str]
    ) -> None:
        window = self.window
        model = self.browsing.view.tags_model
        errors: list[tuple[str, ClientError]] = []
        # aclosing: leaving the loop early (a newer list) closes the generator now,
        # which cancels its workers; a generator merely dropped keeps them running.
        async with contextlib.aclosing(oci.fill_tags(image, names)) as batches:
            async for batch in batches:
                if model.state.generation != generation:
                    return
                for row in batch.rows:
                    model.replace_row(row)
                self._tags_done.update(r.name for r in batch.rows)
                self._tags_done.update(tag for tag, _ in batch.errors)
                if batch.gone:
                    model.remove_keys(batch.gone)
                errors += batch.errors
                self._details_arrived(batch.rows)
        if errors:
            tag, error = errors[0]
            window.error_bar.show_message(
                f"Could not read the details of {counted(len(errors), 'tag')} of {image.full_name} "
                f"(first, {tag}: {error.message})"
            )

    def _details_arrived(self, rows: list[Tag]) -> None:
        """Show the current tag's details once its digest is known."""
        current = self.browsing.current_tag()
        if current is None or not current.digest:
            return
        shown = self.browsing.shown_digest()
        if current.digest != shown and any(r.name == current.name for r in rows):
            self.browsing.show_tag_details(current)

    def fill_images(self) -> None:
        oci = self.backend
        model = self.browsing.view.images_model
        if oci is None:
            return
        generation = model.state.generation
        if generation != self._images_generation:
            self._images_generation, self._images_done = generation, set()
        rows = [i for i in model.rows if i.id not in self._images_done]
        if rows:
            self.window.ops.run(self._fill_images(oci, generation, rows), name=IMAGES_FILL)

    async def _fill_images(self, oci: OciBackend, generation: int, rows: list[Image]) -> None:
        model = self.browsing.view.images_model
        errors: list[tuple[str, ClientError]] = []
        hidden: list[Image] = []
        async with contextlib.aclosing(oci.fill_images(rows)) as filled:
            async for image, error in filled:
                if model.state.generation != generation:
                    return  # the generator closes, cancelling its tag lists
                self._images_done.add(image.id)
                if error is not None:
                    errors.append((image.full_name, error))
                elif oci.hidden(image.full_name):
                    # Nothing tagged (all deleted, here or elsewhere): the row and the
                    # tree's counts leave; the selection goes with the row.
                    hidden.append(image)
                else:
                    model.replace_row(image)
        if hidden:
            shown = self.browsing.image
            model.remove_keys([i.id for i in hidden if shown is None or i.id != shown.id])
            self.tree.refresh_tree()  # the namespaces' counts leave with them
        if errors:
            name, error = errors[0]
            self.window.error_bar.show_message(
                f"Could not list the tags of "
                f"{counted(len(errors), 'repository', 'repositories')} (first, {name}: "
                f"{error.message})"
            )

    def measured(self) -> None:
        """New storage figures: sizes in the images table, sharing in the details."""
        oci = self.backend
        if oci is None:
            return
        model = self.browsing.view.images_model
        for row in list(model.rows):
            model.replace_row(oci.image_row(row.full_name))
        current = self.browsing.current_tag()
        if current is not None and current.digest:
            self.browsing.show_tag_details(current)

    # --- deleting -----------------------------------------------------------------------
    def _storage_note(self, oci: OciBackend) -> tuple[str, str | None]:
        """(note after the figures, why there are none)."""
        if oci.last_scan is None:
            return GC_NOTE, NO_SCAN
        when = oci.last_scan.at.astimezone().strftime("%H:%M")
        return f"These figures come from the storage scan of {when}. {GC_NOTE}", None

    async def delete_tags(self, backend: Backend, image: Image, tags: list[Tag]) -> None:
        assert isinstance(backend, OciBackend)
        window = self.window
        prepared = await backend.prepare_tag_delete(image, [t.name for t in tags])
        self.show_capabilities()  # the delete probe may have run just now
        if prepared.gone:
            self.browsing.view.tags_model.remove_keys(prepared.gone)
        if not prepared.tags:
            window.statusBar().showMessage("Those tags were deleted meanwhile.", 8000)
            return
        deletion = prepared.deletion
        note, impact_error = self._storage_note(backend)
        steps: tuple[DeleteStep, ...]
        if deletion.choice:
            plan = DeletePlan(
                image,
                prepared.tags,
                methods=delete_methods(prepared, deletion),
                storage_note=note,
                trash=False,
            )
            method = await confirm_delete.choose_delete_method(self._parent, plan, impact_error)
            if method is None:
                return
            steps = deletion.ways[method.key]
        else:
            ((way, steps),) = deletion.ways.items()
            plan = DeletePlan(image, prepared.tags, storage_note=note, trash=False)
            impact = prepared.impacts[way]
            if not await confirm_delete.confirm_delete(self._parent, plan, impact, impact_error):
                return
        await self._run(backend, image, steps)

    async def delete_image(self, backend: Backend, image: Image) -> None:
        assert isinstance(backend, OciBackend)
        window = self.window
        prepared = await backend.prepare_image_delete(image)
        self.show_capabilities()
        if not prepared.steps:
            window.statusBar().showMessage(
                f"{image.full_name} has no tags, so nothing to delete (the registry may "
                "keep listing the name).",
                8000,
            )
            return
        note, impact_error = self._storage_note(backend)
        plan = DeletePlan(prepared.image, whole_image=True, storage_note=note, trash=False)
        if not await confirm_delete.confirm_delete(
            self._parent, plan, prepared.impact, impact_error
        ):
            return
        outcome = await self._run(backend, prepared.image, prepared.steps)
        if not outcome.failed and not outcome.cancelled and outcome.stopped_by is None:
            self.browsing.image_deleted(image)

    async def _run(
        self, oci: OciBackend, image: Image, steps: tuple[DeleteStep, ...]
    ) -> BulkOutcome:
        browsing = self.browsing
        job = StepsDelete(
            oci,
            oci.run_step,
            image,
            steps,
            on_progress=browsing.bulk_progress,
            on_chunk=lambda names: browsing.tags_removed(image, names),
        )
        try:
            return await browsing.run_bulk(oci, image, job)
        finally:
            self.deletesRan.emit()
