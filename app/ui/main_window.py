"""The main window: navigator tree on the left, views (browse, storage) on the
right, the error bar above, the connection and embedded registry in the status bar.

The window talks to one :class:`~app.ui.backends.protocol.Backend` at a time; switching
profiles replaces it and reloads everything. Every network call goes through
``self.ops`` (:class:`~app.ui.common.operations.Operations`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.client.credentials import CredentialStore
from app.client.embedded import EmbeddedError, EmbeddedRegistry
from app.client.errors import AuthenticationFailed, ClientError
from app.client.profiles import Profile
from app.ui.backends import berth as _berth_backend  # noqa: F401  (registers the "berth" kind)
from app.ui.backends import oci as _oci_backend  # noqa: F401  (registers the "oci" kind)
from app.ui.backends import protocol as backends
from app.ui.backends.protocol import Backend, Identity
from app.ui.browse.controller import BrowseController
from app.ui.browse.navigator import Navigator
from app.ui.browse.view import BrowseView
from app.ui.common.actions import Actions
from app.ui.common.error_bar import ErrorBar
from app.ui.common.operations import Operations
from app.ui.common.settings import Settings
from app.ui.connections import dialog as connections_dialog
from app.ui.connections.session import EmbeddedStatus, Secrets, all_profiles, fill_connection_menu
from app.ui.oci.controller import OciController
from app.ui.policies import PoliciesTab
from app.ui.storage.tabs import StorageTabs
from app.ui.trash.undo import UndoDelete
from app.ui.trash.view import DESCRIPTION as TRASH_DESCRIPTION
from app.ui.trash.view import TITLE as TRASH_TITLE
from app.ui.trash.view import TrashView


class MainWindow(QMainWindow):
    connected = Signal(object)  # Backend | None: views re-read everything
    scopeChanged = Signal(object)  # Scope | None
    embeddedStateChanged = Signal(object)  # State, from the registry's reader thread

    def __init__(self, settings: Settings, store: CredentialStore | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.store = store or CredentialStore()
        self.ops = Operations(self)
        self.backend: Backend | None = None
        self.identity: Identity | None = None
        self.profile: Profile | None = None
        self.embedded: EmbeddedRegistry | None = None
        self.secrets = Secrets(self.store, lambda: self.embedded)
        self._relogin: asyncio.Task[None] | None = None
        self._shutdown: asyncio.Task[None] | None = None
        self._closed = False

        self.setObjectName("mainWindow")
        self._set_title("Berth")
        self.setAccessibleDescription("Browse registries, select and delete tags and images")
        self.acts = Actions(self)
        self._build()
        self._wire()
        self._restore_layout()
        self.update_actions()

    # === layout ====================================================================
    def _build(self) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(6, 6, 6, 0)
        outer.setSpacing(6)
        self.error_bar = ErrorBar(central)
        outer.addWidget(self.error_bar)

        self.navigator = Navigator(lambda: self.backend, self.ops, central)
        self.browse = BrowseView(self.ops.run, central)
        self.views = QTabWidget(central)
        self.views.setObjectName("views")
        self.views.setAccessibleName("Views")
        self.views.setDocumentMode(True)
        self.add_view(self.browse, "Browse", "Images, tags and details")

        self.splitter = QSplitter(Qt.Orientation.Horizontal, central)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(self.navigator)
        self.splitter.addWidget(self.views)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 4)
        self.splitter.setSizes([260, 1000])
        outer.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        # Toolbar and menus, from the same actions.
        a = self.acts
        self.toolbar = toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.connection_button = QToolButton(toolbar)
        self.connection_button.setText("Connection")
        self.connection_button.setAccessibleName("Connection")
        self.connection_button.setAccessibleDescription("Switch or manage registry connections")
        self.connection_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.connection_menu = QMenu(self.connection_button)
        self.connection_button.setMenu(self.connection_menu)
        self.connection_menu.aboutToShow.connect(self._fill_connection_menu)
        toolbar.addWidget(self.connection_button)
        toolbar.addAction(a.refresh)
        toolbar.addSeparator()
        toolbar.addAction(a.copy_pull)
        toolbar.addAction(a.delete_tags)
        toolbar.addAction(a.delete_image)

        menu = self.menuBar()
        m = menu.addMenu("&Connection")
        m.addAction(a.connections)
        m.addSeparator()
        quit_action = m.addAction("&Quit")
        quit_action.setShortcut("Ctrl+Q")
        quit_action.triggered.connect(self.close)
        self.edit_menu = m = menu.addMenu("&Edit")
        for action in (a.copy_pull, a.copy_digest, a.find):
            m.addAction(action)
        m = menu.addMenu("&Image")
        for action in (a.delete_tags, a.delete_image):
            m.addAction(action)
        m = menu.addMenu("&View")
        m.addAction(a.refresh)

        # Status bar: busy, connection, embedded registry.
        status = self.statusBar()
        self.busy = QProgressBar(status)
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(90)
        self.busy.setMaximumHeight(14)
        self.busy.setAccessibleName("Working")
        self.busy.hide()
        status.addPermanentWidget(self.busy)
        self.connection_label = QLabel(status)
        self.connection_label.setObjectName("connectionStatus")
        self._show_connection("Not connected")
        status.addPermanentWidget(self.connection_label)
        self.embedded_label = QLabel(status)
        self.embedded_label.setObjectName("embeddedStatus")
        self.embedded_label.setAccessibleName("Embedded registry")
        self.embedded_label.hide()
        status.addPermanentWidget(self.embedded_label)
        self.embedded_status = EmbeddedStatus(
            self.embedded_label,
            self.error_bar,
            lambda: (
                self.backend is not None
                and not self.ops.running("connect")
                and self._shutdown is None
            ),
            self.acts.refresh.trigger,
        )

        # The features, each wired in its own package; they meet here.
        self.browsing = BrowseController(self, self.browse, self.navigator, self)
        # What a plain OCI registry needs besides (banner, row fills, deletes).
        self.oci = OciController(self, self.browsing, self.navigator, self)
        self.browsing.delete_handlers.append(self.oci)
        outer.insertWidget(outer.indexOf(self.error_bar) + 1, self.oci.banner)
        self.storage_tabs = StorageTabs(self, self.views, toolbar, self.navigator)
        self.storage = self.storage_tabs.view
        self.oci_storage = self.storage_tabs.oci_view
        self.policies_tab = PoliciesTab(self, self.views)
        self.policies = self.policies_tab.view
        self.trash = TrashView(self)
        self.add_view(self.trash, TRASH_TITLE, TRASH_DESCRIPTION)
        # Undo of the last delete: first in the Edit menu; in the status bar a permanent
        # widget (a temporary message hides ordinary ones) right of the busy bar, which
        # comes and goes: permanent widgets sit right-aligned, so what is left of it
        # would jump under the pointer of someone reaching for Undo.
        self.undo = UndoDelete(self, self)
        self.edit_menu.insertAction(self.edit_menu.actions()[0], self.undo.action)
        self.edit_menu.insertSeparator(self.edit_menu.actions()[1])
        status.insertPermanentWidget(1, self.undo.widget)

    def _show_connection(self, text: str) -> None:
        """The status bar's connection; a screen reader reads what it says, too."""
        self.connection_label.setText(text)
        self.connection_label.setAccessibleName(f"Connection: {text}")

    def _set_title(self, title: str) -> None:
        # The X title alone does not reach a screen reader: the window's name says it.
        self.setWindowTitle(title)
        self.setAccessibleName(title)

    def add_view(self, widget: QWidget, title: str, description: str = "") -> int:
        """The slot for more views (storage, ...): a tab beside Browse. A view keeps
        itself current through ``connected`` and ``scopeChanged``."""
        index = self.views.addTab(widget, title)
        self.views.setTabToolTip(index, description or title)
        widget.setAccessibleName(title)
        if description:
            widget.setAccessibleDescription(description)
        return index

    def _wire(self) -> None:
        a = self.acts
        self.ops.busyChanged.connect(self.busy.setVisible)
        self.ops.failed.connect(self.show_failure)
        self.error_bar.retryRequested.connect(self.refresh)
        a.refresh.triggered.connect(self.refresh)
        a.connections.triggered.connect(self.manage_connections)
        self.embeddedStateChanged.connect(self.embedded_status.show_state)
        self.browsing.scopeChanged.connect(self.scopeChanged)
        # In the order the features were built before: browse, OCI, storage.
        self.connected.connect(self.browsing.connected)
        self.connected.connect(self.oci.connected)
        self.connected.connect(self.storage_tabs.connected)
        self.scopeChanged.connect(self.storage_tabs.scope_changed)
        self.connected.connect(self.policies_tab.connected)
        self.scopeChanged.connect(self.policies_tab.scope_changed)
        self.storage.serverEvent.connect(self.browsing.updates.on_event)
        self.oci_storage.scanned.connect(self.oci.measured)
        self.oci.deletesRan.connect(self.oci_storage.show_figures)
        self.connected.connect(self.trash.connected)
        self.scopeChanged.connect(self.trash.scope_changed)
        self.storage.serverEvent.connect(self.trash.on_event)
        self.browsing.deleted.connect(self.undo.deleted)
        self.undo.restored.connect(self.trash.entries_gone)
        self.connected.connect(self.undo.connected)

    def update_actions(self) -> None:
        """Enable and explain the actions again (capabilities found, selection)."""
        self.browsing.update_actions()

    # === settings ==================================================================
    def _restore_layout(self) -> None:
        s = self.settings
        geometry = s.geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1280, 800)
        for name, splitter in self._splitters().items():
            state = s.state(f"splitter/{name}")
            if state is not None:
                splitter.restoreState(state)
        for name, view in self._headers().items():
            state = s.state(f"header/{name}")
            if state is not None:
                view.restoreState(state)

    def _splitters(self) -> dict[str, QSplitter]:
        return {
            "main": self.splitter,
            "browse": self.browse.splitter,
            "tags": self.browse.tags_splitter,
        }

    def _headers(self) -> dict[str, Any]:
        return {
            "images": self.browse.images.view.horizontalHeader(),
            "tags": self.browse.tags.view.horizontalHeader(),
            "tree": self.navigator.tree.header(),
        }

    def save_layout(self) -> None:
        s = self.settings
        s.set_geometry(self.saveGeometry())
        for name, splitter in self._splitters().items():
            s.set_state(f"splitter/{name}", splitter.saveState())
        for name, header in self._headers().items():
            s.set_state(f"header/{name}", header.saveState())
        s.sync()

    # === connecting ================================================================
    def open_profile(self, profile: Profile, secret: str | None = None) -> asyncio.Task[Any]:
        return self.ops.run(self.connect_to(profile, secret), name="connect")

    async def connect_to(self, profile: Profile, secret: str | None = None) -> None:
        """Replace the connection: close the old backend, log in, load the tree."""
        await self._disconnect()
        self.profile = profile
        self._show_connection(f"Connecting to {profile.host}…")
        secret = secret if secret is not None else self.secrets.secret_for(profile)
        while True:
            if secret is None and profile.username:
                answer = await self.secrets.ask(self, profile, "Enter the password or token.")
                if answer is None:
                    self._show_connection(f"Not connected ({profile.name})")
                    return
                profile, secret = answer
            backend = backends.create(profile, secret)
            try:
                identity = await backend.identity()
                workspaces = await backend.workspaces()
            except AuthenticationFailed:
                await backend.aclose()
                answer = await self.secrets.ask(
                    self,
                    profile,
                    f"{profile.host} rejected the credentials for {profile.username}.",
                )
                if answer is None:
                    self._show_connection(f"Not connected ({profile.name})")
                    return
                profile, secret = answer
                continue
            except BaseException:
                await backend.aclose()
                self._show_connection(f"Not connected ({profile.name})")
                raise
            break
        self.backend, self.identity, self.profile = backend, identity, profile
        if not profile.embedded:
            self.settings.set_last_profile(profile.name)
        role = " (superuser)" if identity.superuser else ""
        self._show_connection(f"{identity.user}{role} @ {profile.host}")
        self.connection_label.setToolTip(f"{profile.name}: {profile.base_url}")
        self.connection_button.setText(profile.name)
        self.connection_button.setAccessibleName(f"Connection: {profile.name}")
        self._set_title(f"Berth — {identity.user} @ {profile.host}")
        self.error_bar.clear()
        await self.navigator.show_top(backend, workspaces)
        self.connected.emit(backend)
        self.update_actions()
        await self.browsing.restore_selection()

    async def _disconnect(self) -> None:
        for name in ("images-page", "tags-page", "details", "image-detail", "tree-all"):
            self.ops.cancel(name)
        old, self.backend = self.backend, None
        self.identity = None
        self._set_title("Berth")
        self.browsing.forget()
        self.connected.emit(None)
        self.update_actions()
        if old is not None:
            await old.aclose()

    # --- the embedded registry ----------------------------------------------------------
    def use_embedded(self, embedded: EmbeddedRegistry) -> asyncio.Task[Any]:
        """Start the app's own registry (in a thread: it takes a second) and connect."""
        self.embedded = embedded
        embedded.on_state = self.embeddedStateChanged.emit
        self.embedded_label.show()
        self.embedded_status.embedded = embedded
        self.embedded_status.show_state(embedded.state)

        async def start() -> None:
            try:
                profile = await asyncio.to_thread(embedded.start)
            except EmbeddedError as exc:
                self.error_bar.show_message(str(exc))
                return
            if embedded.keyring_warning:
                self.error_bar.show_message(embedded.keyring_warning)
            await self.connect_to(profile)

        return self.ops.run(start(), name="connect")

    # --- profiles -----------------------------------------------------------------------
    def _fill_connection_menu(self) -> None:
        profiles = all_profiles(self.settings, self.embedded)
        fill_connection_menu(
            self.connection_menu, profiles, self.profile, self.open_profile, self.acts.connections
        )

    def manage_connections(self) -> asyncio.Task[Any]:
        async def run() -> None:
            current = self.profile.name if self.profile else None
            result = await connections_dialog.edit_connections(
                self, all_profiles(self.settings, self.embedded), self.store, current
            )
            if result is None:
                return
            self.settings.set_profiles(result.profiles)
            self.secrets.session.update(result.session_secrets)
            if result.connect_to is not None:
                await self.connect_to(result.connect_to)

        return self.ops.run(run(), name="connections")

    # === failures ==================================================================
    def show_failure(self, error: ClientError, name: str) -> None:
        if isinstance(error, AuthenticationFailed) and self.profile is not None:
            self.error_bar.show_error(error)
            if self._relogin is None or self._relogin.done():
                self._relogin = asyncio.get_event_loop().create_task(
                    self._log_in_again(), name="relogin"
                )
            return
        self.error_bar.show_error(error)

    async def _log_in_again(self) -> None:
        """Credentials expired or changed mid-session: ask, reconnect, reload."""
        profile = self.profile
        if profile is None:
            return
        answer = await self.secrets.ask(
            self,
            profile,
            f"The credentials for {profile.host} are no longer accepted. Log in again.",
        )
        if answer is None:
            return
        new_profile, secret = answer
        path = self.navigator.current_path()
        image = self.browsing.image
        image_id = image.id if image else None
        self.settings.set_last_path(path)
        self.settings.set_last_image(image_id)
        self.open_profile(new_profile, secret)

    # === actions ===================================================================
    def refresh(self) -> None:
        if self.backend is None:
            if self.profile is not None:
                self.open_profile(self.profile)
            return
        self.error_bar.clear()
        self.navigator.refresh_tree()
        self.browsing.refresh()

    # === closing ===================================================================
    @property
    def closed(self) -> bool:
        return self._closed

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closed:
            event.accept()
            return
        event.ignore()
        if self._shutdown is None:
            self.save_layout()
            self._shutdown = asyncio.get_event_loop().create_task(
                self._shut_down(), name="shutdown"
            )

    async def _shut_down(self) -> None:
        if self._relogin is not None and not self._relogin.done():
            self._relogin.cancel()
        await self.ops.drain()
        # Views forget the connection: their timers (a refresh an event scheduled)
        # stop instead of firing into a closed window.
        self.connected.emit(None)
        if self.backend is not None:
            await self.backend.aclose()
            self.backend = None
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)
        self._closed = True
        self.close()
