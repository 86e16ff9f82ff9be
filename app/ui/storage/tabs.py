"""The Storage tab and the toolbar's pending-GC button, as the window shows them:
the Berth storage view on the navigator's workspace, or, for a plain OCI registry,
the view of its scanned storage (one Storage tab either way)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QSizePolicy, QTabWidget, QToolBar, QWidget

from app.client.berth_api import RepositoryStorage
from app.ui.backends.oci import OciBackend
from app.ui.backends.protocol import Backend, Scope
from app.ui.common.window import Window
from app.ui.storage import oci_view, view
from app.ui.storage.indicator import PendingGcButton
from app.ui.storage.oci_view import OciStorageView
from app.ui.storage.view import StorageView


class Navigating(Protocol):
    """What the storage tab needs of the navigator."""

    def workspace_role(self, workspace: str) -> str | None: ...
    async def go_to(self, path: Sequence[str]) -> None: ...


class StorageTabs(QObject):
    def __init__(
        self, window: Window, views: QTabWidget, toolbar: QToolBar, navigator: Navigating
    ) -> None:
        super().__init__(views)
        self.window = window
        self.views = views
        self.navigator = navigator
        # A plain registry's storage: its tab is there only while connected to one.
        # (Made first, as before: widgets made earlier come earlier in the focus chain.)
        self.oci_view = OciStorageView(window.ops, views)
        self.oci_view.hide()
        self.view = StorageView(window.ops, views)
        self.view.setAccessibleName("Storage")
        window.add_view(self.view, "Storage", view.DESCRIPTION)

        indicator = PendingGcButton(toolbar)
        spacer = QWidget(toolbar)
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        indicator.action = toolbar.addWidget(indicator)
        indicator.show_figures(None, None)
        self.view.figuresChanged.connect(indicator.show_figures)
        indicator.clicked.connect(lambda: views.setCurrentWidget(self.view))
        self.view.indicator = indicator
        self.view.repositoryActivated.connect(
            lambda repo: window.ops.run(self._reveal(repo), name="reveal")
        )
        window.acts.refresh.triggered.connect(self.view.refresh_if_shown)

    def connected(self, backend: Backend | None) -> None:
        oci = backend if isinstance(backend, OciBackend) else None
        self.oci_view.set_backend(oci)
        if backend is not None:
            index = self.views.indexOf(self.oci_view)
            if oci is not None and index < 0:
                self.window.add_view(self.oci_view, "Storage", oci_view.DESCRIPTION)
            elif oci is None and index >= 0:
                self.views.removeTab(index)
        self.view.set_backend(backend)
        # A registry without storage figures (plain OCI) has no use for this tab.
        supported = backend is None or self.view.backend is not None
        self.views.setTabVisible(self.views.indexOf(self.view), supported)

    def scope_changed(self, scope: Scope | None) -> None:
        if scope is None:
            return  # nothing selected: keep showing the last workspace
        self.view.set_workspace(scope.workspace, self._is_workspace_admin(scope.workspace))
        self.view.show_repository(scope.repository)

    def _is_workspace_admin(self, workspace: str) -> bool:
        identity = self.window.identity
        if identity is not None and identity.superuser:
            return True
        return self.navigator.workspace_role(workspace) == "admin"

    async def _reveal(self, repository: RepositoryStorage) -> None:
        workspace, backend = self.view.workspace, self.window.backend
        if workspace is None or backend is None:
            return
        path = (
            (workspace, repository.project, repository.slug)
            if backend.capabilities.projects and repository.project
            else (workspace, repository.slug)
        )
        await self.navigator.go_to(path)
