"""The navigator: a filter box over the tree of workspaces → projects →
repositories (or a plain registry's namespaces), loaded lazily from the backend.

It knows the tree only: what a selected node means for the tables is
:class:`~app.ui.browse.controller.BrowseController`'s, told through
``currentChanged``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QLineEdit, QTreeView, QVBoxLayout, QWidget

from app.client.berth_api import Workspace
from app.core.permissions import Permission
from app.ui.backends.protocol import Backend, NamespaceTree
from app.ui.browse.navigator_model import (
    NavigatorModel,
    Node,
    namespace_node,
    project_node,
    repository_node,
    workspace_node,
)
from app.ui.common.operations import Operations
from app.ui.common.table_model import ObjectRole


class Navigator(QWidget):
    currentChanged = Signal(object)  # Node | None: the node selected in the tree

    def __init__(
        self, backend: Callable[[], Backend | None], ops: Operations, parent: QWidget
    ) -> None:
        super().__init__(parent)
        self._backend = backend
        self.ops = ops
        self.repo_permissions: dict[tuple[str, str], Permission] = {}  # from the tree
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.tree_filter = QLineEdit(self)
        self.tree_filter.setObjectName("treeFilter")
        self.tree_filter.setPlaceholderText("Filter workspaces, projects, repositories")
        self.tree_filter.setClearButtonEnabled(True)
        self.tree_filter.setAccessibleName("Filter the navigator")
        self.tree_filter.setAccessibleDescription(
            "Shows matching workspaces, projects and repositories"
        )
        layout.addWidget(self.tree_filter)
        self.nav_model = NavigatorModel(self._load_children, ops.run, self)
        self.nav_proxy = QSortFilterProxyModel(self)
        self.nav_proxy.setSourceModel(self.nav_model)
        self.nav_proxy.setRecursiveFilteringEnabled(True)
        self.nav_proxy.setAutoAcceptChildRows(True)
        self.nav_proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.tree = QTreeView(self)
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
        layout.addWidget(self.tree, 1)
        QWidget.setTabOrder(self.tree_filter, self.tree)
        self.tree_filter.textChanged.connect(self._filter_tree)
        self.tree.selectionModel().currentChanged.connect(self._current_changed)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        node = current.data(ObjectRole) if current.isValid() else None
        self.currentChanged.emit(node if isinstance(node, Node) else None)

    # --- loading ------------------------------------------------------------------------
    async def show_top(self, backend: Backend, workspaces: list[Workspace]) -> None:
        """The tree's first level for a new connection."""
        self.nav_model.set_children(self.nav_model.root, await self._top_nodes(backend, workspaces))

    def clear(self) -> None:
        self.repo_permissions.clear()
        self.nav_model.clear()

    async def _top_nodes(self, backend: Backend, workspaces: list[Any]) -> list[Node]:
        if isinstance(backend, NamespaceTree):
            return [namespace_node(n) for n in await backend.namespaces(None)]
        return [workspace_node(w) for w in workspaces]

    async def _load_children(self, node: Node) -> list[Node]:
        backend = self._backend()
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

    def refresh_tree(self) -> None:
        """Read the navigator's nodes again (counts), keeping expansion and selection."""
        self.ops.run(self.read_again(), name="tree-refresh")

    async def read_again(self) -> None:
        backend = self._backend()
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

    # --- where the selection is ----------------------------------------------------------
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

    def expand_top(self) -> None:
        """Open the first top-level node (a plain registry's one namespace)."""
        if self.nav_model.root.children:
            top = self.nav_model.root.children[0]
            self.tree.expand(self.nav_proxy.mapFromSource(self.nav_model.index_of(top)))

    def workspace_role(self, workspace: str) -> str | None:
        """The user's role in ``workspace``, as its tree node says."""
        node = self.nav_model.find((workspace,))
        payload = node.payload if node is not None else None
        role = getattr(payload, "role", None)
        return role if isinstance(role, str) else None

    async def go_to(self, path: Sequence[str]) -> None:
        """Select ``path``, or as much of it as exists."""
        node = await self.reveal(path)
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
