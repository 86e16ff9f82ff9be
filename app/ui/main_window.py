"""The main window: navigator tree on the left, views (browse, storage) on the
right, the error bar above, the connection and embedded registry in the status bar.

The window talks to one :class:`~app.ui.backends.protocol.Backend` at a time; switching
profiles replaces it and reloads everything. Every network call goes through
``self.ops`` (:class:`~app.ui.common.operations.Operations`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QActionGroup, QCloseEvent, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QProgressBar,
    QSplitter,
    QTabWidget,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.client.berth_api import Image, Tag
from app.client.credentials import CredentialStore, KeyringUnavailable
from app.client.embedded import EmbeddedError, EmbeddedRegistry, State
from app.client.errors import AuthenticationFailed, ClientError, NotFound
from app.client.profiles import Profile
from app.core.permissions import Permission
from app.ui.backends import berth as _berth_backend  # noqa: F401  (registers the "berth" kind)
from app.ui.backends import oci as _oci_backend  # noqa: F401  (registers the "oci" kind)
from app.ui.backends import protocol as backends
from app.ui.backends.deletion import BulkDelete, BulkOutcome, DeletePlan
from app.ui.backends.protocol import Backend, Identity, NamespaceTree, Scope
from app.ui.browse.navigator_model import (
    NavigatorModel,
    Node,
    namespace_node,
    project_node,
    repository_node,
    workspace_node,
)
from app.ui.browse.updates import BrowseUpdates
from app.ui.browse.view import BrowseView
from app.ui.common import confirm_delete
from app.ui.common.actions import Actions, Context, install_context_menu
from app.ui.common.error_bar import ErrorBar
from app.ui.common.operations import Operations
from app.ui.common.settings import Settings
from app.ui.common.table_model import ObjectRole
from app.ui.connections import dialog as connections_dialog
from app.ui.connections import login_dialog
from app.ui.oci.controller import OciController
from app.ui.storage import view as storage_view

# While the demo is seeded beside its registry, the window refreshes this often.
SEED_REFRESH_S = 3.0


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
        self.session_secrets: dict[str, str] = {}  # when there is no keyring
        self.scope: Scope | None = None
        self.image: Image | None = None
        self.permissions: dict[int, Permission] = {}  # image id → permission there
        self.repo_permissions: dict[tuple[str, str], Permission] = {}  # from the tree
        self._relogin: asyncio.Task[None] | None = None
        self._shutdown: asyncio.Task[None] | None = None
        self._closed = False
        self._seeding: int | None = None  # the demo's seeding progress last shown
        self._seed_refreshed = 0.0  # when its seeding last made the window refresh
        self._restore_image: int | None = None

        self.setObjectName("mainWindow")
        self._set_title("Berth")
        self.setAccessibleDescription("Browse registries, select and delete tags and images")
        self.acts = Actions(self)
        self._build()
        self.updates = BrowseUpdates(self)
        self._wire()
        self.storage = storage_view.install(self)
        self._restore_layout()
        self._update_actions()

    # === layout ====================================================================
    def _build(self) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(6, 6, 6, 0)
        outer.setSpacing(6)
        self.error_bar = ErrorBar(central)
        outer.addWidget(self.error_bar)

        # Navigator: filter box over the tree.
        nav = QWidget(central)
        nav_layout = QVBoxLayout(nav)
        nav_layout.setContentsMargins(0, 0, 0, 0)
        nav_layout.setSpacing(4)
        self.tree_filter = QLineEdit(nav)
        self.tree_filter.setObjectName("treeFilter")
        self.tree_filter.setPlaceholderText("Filter workspaces, projects, repositories")
        self.tree_filter.setClearButtonEnabled(True)
        self.tree_filter.setAccessibleName("Filter the navigator")
        self.tree_filter.setAccessibleDescription(
            "Shows matching workspaces, projects and repositories"
        )
        nav_layout.addWidget(self.tree_filter)
        self.nav_model = NavigatorModel(self._load_children, self.ops.run, self)
        self.nav_proxy = QSortFilterProxyModel(self)
        self.nav_proxy.setSourceModel(self.nav_model)
        self.nav_proxy.setRecursiveFilteringEnabled(True)
        self.nav_proxy.setAutoAcceptChildRows(True)
        self.nav_proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.tree = QTreeView(nav)
        self.tree.setObjectName("navigator")
        self.tree.setModel(self.nav_proxy)
        self.tree.setAccessibleName("Navigator")
        self.tree.setAccessibleDescription(
            "Workspaces, projects and repositories with image counts; "
            "selecting one lists its images"
        )
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setUniformRowHeights(True)
        self.tree.header().setStretchLastSection(False)
        self.tree.header().setSectionResizeMode(0, self.tree.header().ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(1, self.tree.header().ResizeMode.ResizeToContents)
        nav_layout.addWidget(self.tree, 1)

        self.browse = BrowseView(self.ops.run, central)
        self.views = QTabWidget(central)
        self.views.setObjectName("views")
        self.views.setAccessibleName("Views")
        self.views.setDocumentMode(True)
        self.add_view(self.browse, "Browse", "Images, tags and details")

        self.splitter = QSplitter(Qt.Orientation.Horizontal, central)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(nav)
        self.splitter.addWidget(self.views)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 4)
        self.splitter.setSizes([260, 1000])
        outer.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        # Toolbar and menus, from the same actions.
        a = self.acts
        toolbar = self.addToolBar("Main")
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
        m = menu.addMenu("&Edit")
        for action in (a.copy_pull, a.copy_digest, a.find):
            m.addAction(action)
        m = menu.addMenu("&Image")
        for action in (a.delete_tags, a.delete_image):
            m.addAction(action)
        m = menu.addMenu("&View")
        m.addAction(a.refresh)

        # Context menus: the same actions.
        tags_view = self.browse.tags.view
        images_view = self.browse.images.view
        for view, items in (
            (tags_view, [a.copy_pull, a.copy_digest, None, a.delete_tags, a.delete_image, None,
                         a.refresh]),
            (images_view, [a.copy_pull, None, a.delete_image, None, a.refresh]),
            (self.tree, [a.refresh]),
        ):  # fmt: skip
            install_context_menu(view, items)
        # Del deletes tags only where tags have focus; Shift+Del the image from either table.
        a.delete_tags.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        a.delete_image.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)

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

        QWidget.setTabOrder(self.tree_filter, self.tree)
        QWidget.setTabOrder(self.tree, self.browse.images.filter)

        # What a plain OCI registry needs besides (banner, storage scan, deletes).
        self.oci = OciController(self)
        outer.insertWidget(outer.indexOf(self.error_bar) + 1, self.oci.banner)

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
        b = self.browse
        self.ops.busyChanged.connect(self.busy.setVisible)
        self.ops.failed.connect(self._failed)
        self.error_bar.retryRequested.connect(self.refresh)
        a.refresh.triggered.connect(self.refresh)
        a.find.triggered.connect(self.focus_filter)
        a.copy_pull.triggered.connect(self.copy_pull_command)
        a.copy_digest.triggered.connect(self.copy_digest)
        a.delete_tags.triggered.connect(self.delete_selected_tags)
        a.delete_image.triggered.connect(self.delete_current_image)
        a.connections.triggered.connect(self.manage_connections)
        self.tree_filter.textChanged.connect(self._filter_tree)
        self.tree.selectionModel().currentChanged.connect(self._tree_current_changed)
        b.images.currentChanged.connect(self._image_changed)
        b.tags.currentChanged.connect(self._tag_changed)
        b.tags.selectionChanged.connect(self._update_actions)
        b.images_model.pageLoaded.connect(self._restore_image_selection)
        b.bulk.cancelRequested.connect(lambda: self.statusBar().showMessage("Cancelling…", 3000))
        self.embeddedStateChanged.connect(self._show_embedded_state)

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
            "tree": self.tree.header(),
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
    def secret_for(self, profile: Profile) -> str | None:
        if profile.embedded and self.embedded is not None and self.embedded.credentials:
            return self.embedded.credentials.password
        if profile.secret_account in self.session_secrets:
            return self.session_secrets[profile.secret_account]
        if not profile.username:
            return None
        try:
            return self.store.get(profile.secret_account)
        except KeyringUnavailable:
            return None

    def open_profile(self, profile: Profile, secret: str | None = None) -> asyncio.Task[Any]:
        return self.ops.run(self.connect_to(profile, secret), name="connect")

    async def connect_to(self, profile: Profile, secret: str | None = None) -> None:
        """Replace the connection: close the old backend, log in, load the tree."""
        await self._disconnect()
        self.profile = profile
        self._show_connection(f"Connecting to {profile.host}…")
        secret = secret if secret is not None else self.secret_for(profile)
        while True:
            if secret is None and profile.username:
                answer = await self._ask_login(profile, "Enter the password or token.")
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
                answer = await self._ask_login(
                    profile, f"{profile.host} rejected the credentials for {profile.username}."
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
        self.nav_model.set_children(self.nav_model.root, await self._top_nodes(backend, workspaces))
        self.connected.emit(backend)
        self._update_actions()
        await self._restore_selection()

    async def _ask_login(self, profile: Profile, reason: str) -> tuple[Profile, str] | None:
        answer = await login_dialog.ask_password(self, profile, reason, self.store.available)
        if answer is None:
            return None
        username, secret, remember = answer
        if username != profile.username:
            profile = Profile(**{**profile.to_dict(), "username": username})
        if remember and not profile.embedded:
            try:
                self.store.set(profile.secret_account, secret)
            except KeyringUnavailable:
                self.session_secrets[profile.secret_account] = secret
        else:
            self.session_secrets[profile.secret_account] = secret
        return profile, secret

    async def _disconnect(self) -> None:
        for name in ("images-page", "tags-page", "details", "image-detail", "tree-all"):
            self.ops.cancel(name)
        old, self.backend = self.backend, None
        self.identity = None
        self._set_title("Berth")
        self.scope = None
        self.image = None
        self.permissions.clear()
        self.repo_permissions.clear()
        self.nav_model.clear()
        self.browse.images_model.set_source(None)
        self.browse.tags_model.set_source(None)
        self.browse.details.show_nothing()
        self.connected.emit(None)
        self._update_actions()
        if old is not None:
            await old.aclose()

    # --- the embedded registry ----------------------------------------------------------
    def use_embedded(self, embedded: EmbeddedRegistry) -> asyncio.Task[Any]:
        """Start the app's own registry (in a thread: it takes a second) and connect."""
        self.embedded = embedded
        embedded.on_state = self.embeddedStateChanged.emit
        self.embedded_label.show()
        self._show_embedded_state(embedded.state)

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

    def _show_embedded_state(self, state: State) -> None:
        embedded = self.embedded
        if embedded is None:
            return
        where = f" at {embedded.url}" if state is State.RUNNING and embedded.url else ""
        kind = "Demo registry" if embedded.demo else "Embedded registry"
        text = f"{kind}: {state.value}{where}"
        seeding = embedded.seeding
        if seeding is not None:
            text += f", seeding sample data ({seeding} %)"
        self.embedded_label.setText(text)
        tip = f"Data in {embedded.data_dir}"
        if state is State.FAILED and embedded.error:
            tip += f"\n{embedded.error}"
            self.error_bar.show_message(embedded.error)
        if embedded.seed_error and self._seeding is not None:
            self.error_bar.show_message(embedded.seed_error)
        self.embedded_label.setToolTip(tip)
        self.embedded_label.setAccessibleDescription(text)
        self._follow_seeding(seeding)

    def _follow_seeding(self, seeding: int | None) -> None:
        """While the demo is seeded beside its running registry, show what has landed:
        refresh as F5 does every few seconds, and once more when the seeding ends."""
        was, self._seeding = self._seeding, seeding
        if self.backend is None or self.ops.running("connect") or self._shutdown is not None:
            return
        now = time.monotonic()
        finished = seeding is None and was is not None
        if finished or (seeding is not None and now - self._seed_refreshed >= SEED_REFRESH_S):
            self._seed_refreshed = now
            self.acts.refresh.trigger()

    # --- profiles -----------------------------------------------------------------------
    def all_profiles(self) -> list[Profile]:
        out = self.settings.profiles()
        if self.embedded is not None and self.embedded.state is State.RUNNING:
            with contextlib.suppress(EmbeddedError):
                out.insert(0, self.embedded.profile())
        return out

    def _fill_connection_menu(self) -> None:
        menu = self.connection_menu
        menu.clear()
        group = QActionGroup(menu)
        for profile in self.all_profiles():
            action = menu.addAction(profile.name)
            action.setCheckable(True)
            action.setChecked(self.profile is not None and self.profile.name == profile.name)
            action.setToolTip(profile.base_url)
            group.addAction(action)
            action.triggered.connect(lambda _c=False, p=profile: self.open_profile(p))
        menu.addSeparator()
        menu.addAction(self.acts.connections)

    def manage_connections(self) -> asyncio.Task[Any]:
        async def run() -> None:
            current = self.profile.name if self.profile else None
            result = await connections_dialog.edit_connections(
                self, self.all_profiles(), self.store, current
            )
            if result is None:
                return
            self.settings.set_profiles(result.profiles)
            self.session_secrets.update(result.session_secrets)
            if result.connect_to is not None:
                await self.connect_to(result.connect_to)

        return self.ops.run(run(), name="connections")

    # === failures ==================================================================
    def _failed(self, error: ClientError, name: str) -> None:
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
        answer = await self._ask_login(
            profile, f"The credentials for {profile.host} are no longer accepted. Log in again."
        )
        if answer is None:
            return
        new_profile, secret = answer
        path = self.current_path()
        image_id = self.image.id if self.image else None
        self.settings.set_last_path(path)
        self.settings.set_last_image(image_id)
        self.open_profile(new_profile, secret)

    # === the navigator =============================================================
    async def _top_nodes(self, backend: Backend, workspaces: list[Any]) -> list[Node]:
        if isinstance(backend, NamespaceTree):
            return [namespace_node(n) for n in await backend.namespaces(None)]
        return [workspace_node(w) for w in workspaces]

    async def _load_children(self, node: Node) -> list[Node]:
        backend = self.backend
        if backend is None:
            return []
        scope = node.scope
        assert scope is not None
        if node.kind == "namespace" and isinstance(backend, NamespaceTree):
            return [namespace_node(n) for n in await backend.namespaces(scope)]
        if node.kind == "workspace":
            if backend.capabilities.projects:
                return [project_node(p) for p in await backend.projects(scope.workspace)]
            return [repository_node(r) for r in await backend.repositories(scope.workspace)]
        if node.kind == "project":
            repos = await backend.repositories(scope.workspace, scope.project)
            for repo in repos:
                self._remember_permission(repo.workspace, repo.slug, repo.permission)
            return [repository_node(r) for r in repos]
        return []

    def _remember_permission(self, ws: str, repo: str, permission: Permission) -> None:
        self.repo_permissions[(ws, repo)] = permission

    def _filter_tree(self, text: str) -> None:
        self.nav_proxy.setFilterFixedString(text.strip())
        if text.strip():
            self.ops.run(self._load_whole_tree(), name="tree-all")
            self.tree.expandAll()

    async def _load_whole_tree(self) -> None:
        """Filtering needs every node: load what has not been expanded yet."""
        pending = [self.nav_model.root]
        while pending:
            node = pending.pop()
            if not node.loaded and not node.leaf:
                node.loading = True
                try:
                    children = await self._load_children(node)
                finally:
                    node.loading = False
                self.nav_model.set_children(node, children)
            pending.extend(c for c in node.children if not c.leaf)
        self.tree.expandAll()

    def current_node(self) -> Node | None:
        index = self.tree.selectionModel().currentIndex()
        if not index.isValid():
            return None
        node = index.data(ObjectRole)
        return node if isinstance(node, Node) else None

    def current_path(self) -> tuple[str, ...]:
        node = self.current_node()
        return node.path if node is not None else ()

    def select_path(self, path: Sequence[str]) -> bool:
        node = self.nav_model.find(tuple(path))
        if node is None:
            return False
        index = self.nav_proxy.mapFromSource(self.nav_model.index_of(node))
        if not index.isValid():
            return False
        self.tree.scrollTo(index)
        self.tree.setCurrentIndex(index)
        return True

    async def _restore_selection(self) -> None:
        path = self.settings.last_path()
        self._restore_image = self.settings.last_image()
        node = await self.reveal(path)
        if node is self.nav_model.root:
            if not node.children:
                return
            node = node.children[0]
        self.select_path(node.path)

    async def reveal(self, path: Sequence[str]) -> Node:
        """Load and expand the navigator along ``path`` as far as it exists; returns
        the deepest node found (the root when not even the first name is there)."""
        node = self.nav_model.root
        for depth, name in enumerate(path):
            child = next((c for c in node.children if c.name == name), None)
            if child is None:
                break
            node = child
            if depth + 1 < len(path) and not node.loaded and not node.leaf:
                node.loading = True
                try:
                    children = await self._load_children(node)
                finally:
                    node.loading = False
                self.nav_model.set_children(node, children)
            self.tree.expand(self.nav_proxy.mapFromSource(self.nav_model.index_of(node)))
        return node

    def _tree_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        node = current.data(ObjectRole) if current.isValid() else None
        self.set_scope(node.scope if isinstance(node, Node) else None)
        if isinstance(node, Node):
            self.settings.set_last_path(node.path)

    # === images and tags ===========================================================
    def set_scope(self, scope: Scope | None) -> None:
        if scope == self.scope:
            return
        self.scope = scope
        backend = self.backend
        images = self.browse.images
        if scope is None or backend is None:
            images.title.setText("Images")
            self.browse.images_model.set_source(None)
        else:
            images.title.setText(f"Images in {scope.label}")

            async def source(
                cursor: str | None, sort: str | None, q: str | None, limit: int
            ) -> Any:
                return await backend.images(scope, sort=sort, q=q, limit=limit, cursor=cursor)

            self.browse.images_model.set_source(source)
        self._image_changed(None)
        self.scopeChanged.emit(scope)

    def _restore_image_selection(self) -> None:
        wanted = self._restore_image
        if wanted is None:
            return
        if self.browse.images_model.row_of(wanted) is not None:
            self._restore_image = None
            self.browse.images.select_keys([wanted], current=wanted)

    def _image_changed(self, image: Image | None) -> None:
        if image is not None and self.image is not None and image.id == self.image.id:
            return
        self.image = image
        backend = self.backend
        tags = self.browse.tags
        self.browse.details.show_nothing()
        self.ops.cancel("details")
        if image is None or backend is None:
            tags.title.setText("Tags")
            self.browse.tags_model.set_source(None)
            self._update_actions()
            return
        self.settings.set_last_image(image.id)
        tags.title.setText(f"Tags of {image.full_name}")
        tags.title.setToolTip(backend.pull_reference(image))

        async def source(cursor: str | None, sort: str | None, q: str | None, limit: int) -> Any:
            return await backend.tags(image, sort=sort, q=q, limit=limit, cursor=cursor)

        self.browse.tags_model.set_source(source, server_sort=backend.capabilities.server_sort)
        if self.identity is not None and self.identity.superuser:
            self.permissions[image.id] = Permission.ADMIN
        elif image.id not in self.permissions:
            known = self.repo_permissions.get((image.workspace, image.repository))
            if known is not None:
                self.permissions[image.id] = known  # from the tree; the detail confirms it
            self.ops.run(
                backend.image(image),
                name="image-detail",
                on_done=self._image_detail,
                on_error=self._image_detail_failed(image),
            )
        self._update_actions()

    def _image_detail(self, detail: Image) -> None:
        if detail.permission is not None:
            self.permissions[detail.id] = detail.permission
        self.browse.images_model.replace_row(detail)
        self._update_actions()

    def _image_detail_failed(self, image: Image) -> Any:
        def handle(error: ClientError) -> bool:
            if isinstance(error, NotFound):
                self.browse.images_model.remove_keys([image.id])
            return False

        return handle

    def _tag_changed(self, tag: Tag | None) -> None:
        self._update_actions()
        backend, image = self.backend, self.image
        details = self.browse.details
        if tag is None or backend is None or image is None:
            self.ops.cancel("details")
            details.show_nothing()
            return
        details.show_loading(tag)
        if not tag.digest:
            self.ops.cancel("details")
            return  # a plain registry's row before its manifest was read: shown when it is
        self.ops.run(
            backend.manifest(image, tag.digest),
            name="details",
            on_done=lambda manifest: details.show_manifest(tag, manifest),
        )

    def _update_actions(self) -> None:
        image = self.image
        self.acts.update(
            Context(
                connected=self.backend is not None,
                image=image,
                permission=self.permissions.get(image.id) if image is not None else None,
                selected_tags=len(self.browse.tags.view.selectionModel().selectedRows())
                if image is not None
                else 0,
            )
        )
        if self.browse.bulk.running:
            self.acts.delete_tags.setEnabled(False)
            self.acts.delete_image.setEnabled(False)
        blocked = self.backend.capabilities.delete_blocked if self.backend is not None else None
        if blocked:  # deletes are off on this registry: say so where the actions are
            for action in (self.acts.delete_tags, self.acts.delete_image):
                self.acts.explain_blocked(action, blocked, "deletes are off here")

    def update_actions(self) -> None:
        """Enable and explain the actions again (capabilities found, selection)."""
        self._update_actions()

    def show_tag_details(self, tag: Tag | None) -> None:
        """Show ``tag``'s details again (its row was completed or re-measured)."""
        self._tag_changed(tag)

    # === actions ===================================================================
    def refresh(self) -> None:
        if self.backend is None:
            if self.profile is not None:
                self.open_profile(self.profile)
            return
        self.error_bar.clear()
        self.ops.run(self._refresh_tree(), name="tree-refresh")
        images = self.browse.images_model
        images.reload(keep_rows=len(images.rows))
        tags = self.browse.tags_model
        tags.reload(keep_rows=len(tags.rows))
        if self.image is not None:
            self.permissions.pop(self.image.id, None)
            current, self.image = self.image, None
            keep = self.browse.tags.selected_keys()
            self._image_changed_keep_tags(current, keep)

    def _image_changed_keep_tags(self, image: Image, keep: list[Any]) -> None:
        """Re-check permission and details of the image after F5, without
        dropping the tag selection (the tags model reload keeps it)."""
        self.image = image
        backend = self.backend
        if backend is None:
            return
        if self.identity is not None and self.identity.superuser:
            self.permissions[image.id] = Permission.ADMIN
        else:
            self.ops.run(
                backend.image(image),
                name="image-detail",
                on_done=self._image_detail,
                on_error=self._image_detail_failed(image),
            )
        self._tag_changed(self.browse.tags.current())

    def refresh_tree(self) -> None:
        """Read the navigator's nodes again (counts), keeping expansion and selection."""
        self.ops.run(self._refresh_tree(), name="tree-refresh")

    async def _refresh_tree(self) -> None:
        backend = self.backend
        if backend is None:
            return
        workspaces = await backend.workspaces()
        self._merge(self.nav_model.root, await self._top_nodes(backend, workspaces))
        pending = [c for c in self.nav_model.root.children if c.loaded]
        while pending:
            node = pending.pop()
            self._merge(node, await self._load_children(node))
            pending.extend(c for c in node.children if c.loaded and not c.leaf)

    def _merge(self, node: Node, fresh: list[Node]) -> None:
        """Update a node's children in place (counts), keeping expansion and selection."""
        by_name = {c.name: c for c in fresh}
        model = self.nav_model
        for child in list(node.children):
            if child.name not in by_name:
                row = child.row
                model.beginRemoveRows(model.index_of(node), row, row)
                node.children.pop(row)
                model.endRemoveRows()
        existing = {c.name for c in node.children}
        for child in node.children:
            new = by_name[child.name]
            child.count, child.payload, child.label = new.count, new.payload, new.label
            model.dataChanged.emit(model.index_of(child, 0), model.index_of(child, 1))
        added = [c for c in fresh if c.name not in existing]
        if added:
            first = len(node.children)
            model.beginInsertRows(model.index_of(node), first, first + len(added) - 1)
            for child in added:
                child.parent = node
                node.children.append(child)
            model.endInsertRows()

    def focus_filter(self) -> None:
        focus = QGuiApplication.focusObject()
        b = self.browse
        if focus in (self.tree, self.tree_filter):
            self.tree_filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
            self.tree_filter.selectAll()
        elif focus in (b.images.view, b.images.filter) or self.image is None:
            b.images.focus_filter()
        else:
            b.tags.focus_filter()

    def copy_pull_command(self) -> None:
        backend, image = self.backend, self.image
        if backend is None or image is None:
            return
        tags: list[Tag] = self.browse.tags.selected()
        refs = [backend.pull_reference(image, tag=t.name) for t in tags] or [
            backend.pull_reference(image)
        ]
        text = "\n".join(f"docker pull {ref}" for ref in refs)
        QGuiApplication.clipboard().setText(text)
        self.statusBar().showMessage(
            f"Copied: {text}" if len(refs) == 1 else f"Copied {len(refs)} pull commands", 4000
        )

    def copy_digest(self) -> None:
        tags: list[Tag] = self.browse.tags.selected()
        digests = list(dict.fromkeys(t.digest for t in tags))
        if digests:
            QGuiApplication.clipboard().setText("\n".join(digests))
            self.statusBar().showMessage(f"Copied {digests[0]}" if len(digests) == 1
                                         else f"Copied {len(digests)} digests", 4000)  # fmt: skip

    # === deleting ==================================================================
    def delete_selected_tags(self) -> asyncio.Task[Any] | None:
        if not self.acts.delete_tags.isEnabled():
            return None
        return self.delete_tags(self.browse.tags.selected())

    def delete_tags(self, tags: Sequence[Tag]) -> asyncio.Task[Any] | None:
        """Confirm and delete ``tags`` of the current image. The server decides
        whether it is allowed: the disabled action only mirrors that."""
        image, backend = self.image, self.backend
        if image is None or backend is None or not tags or self.browse.bulk.running:
            return None
        return self.ops.run(self._delete_tags(backend, image, list(tags)), name="delete")

    async def _impact(self, plan: DeletePlan) -> tuple[Any, str | None]:
        backend = self.backend
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
        if self.oci.handles(backend):
            await self.oci.delete_tags(backend, image, tags)
            return
        plan = DeletePlan(image, tuple(tags))
        impact, impact_error = await self._impact(plan)
        if not await confirm_delete.confirm_delete(self, plan, impact, impact_error):
            return
        job = BulkDelete(
            backend,
            image,
            plan.names,
            on_progress=self.browse.bulk.advance,
            on_chunk=lambda names: self.tags_removed(image, names),
            expected={t.name: t.digest for t in plan.tags},
        )
        await self.run_bulk(backend, image, job)

    async def run_bulk(self, backend: Backend, image: Image, job: BulkDelete) -> BulkOutcome:
        """Run a confirmed delete in the bulk panel: progress, cancel, what failed."""
        panel = self.browse.bulk
        panel.start(job)
        self._update_actions()
        try:
            outcome = await job.run()
        finally:
            if panel.job is job:
                panel.job = None
            self._update_actions()
        panel.finish(outcome)
        self.statusBar().showMessage(outcome.summary, 8000)
        if outcome.stopped_by is not None:
            self._failed(outcome.stopped_by, "delete")
        return outcome

    def tags_removed(self, image: Image, names: list[str]) -> None:
        """Tags of ``image`` were deleted from here: the tables and the tree follow."""
        self.updates.tags_deleted(image.id, names)

    def delete_current_image(self) -> asyncio.Task[Any] | None:
        if not self.acts.delete_image.isEnabled():
            return None
        return self.delete_image(self.image)

    def delete_image(self, image: Image | None) -> asyncio.Task[Any] | None:
        backend = self.backend
        if image is None or backend is None:
            return None
        return self.ops.run(
            self._delete_image(backend, image),
            name="delete",
            on_error=self._image_detail_failed(image),
        )

    async def _delete_image(self, backend: Backend, image: Image) -> None:
        if self.oci.handles(backend):
            await self.oci.delete_image(backend, image)
            return
        plan = DeletePlan(image, whole_image=True)
        impact, impact_error = await self._impact(plan)
        if not await confirm_delete.confirm_delete(self, plan, impact, impact_error):
            return
        await backend.delete_image(image)
        self.image_deleted(image)

    def image_deleted(self, image: Image, by: str | None = None) -> None:
        """``image`` is gone (deleted from here, or by ``by`` elsewhere)."""
        self.statusBar().showMessage(
            f"Image {image.full_name} was deleted by {by}." if by
            else f"Deleted image {image.full_name}.", 8000
        )  # fmt: skip
        if self.image is not None and self.image.id == image.id:
            self.browse.images.clear_selection()
            self._image_changed(None)
        self.updates.image_deleted(image.id)

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
