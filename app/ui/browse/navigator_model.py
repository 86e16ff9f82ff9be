"""The navigator tree: workspaces → projects → repositories, loaded lazily (for a
plain OCI registry: the registry → namespaces, the path segments of its names).

A node's children are fetched the first time the view asks (``fetchMore``, when
it is expanded), through an async ``ChildLoader``; ``fetchMore`` is guarded so a
node is loaded once at a time. Each node knows the :class:`Scope` the images
table lists when it is selected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from app.client.berth_api import Project, Repository, Workspace
from app.client.errors import ClientError
from app.ui.backends.protocol import Namespace, Scope
from app.ui.common.formatting import counted
from app.ui.common.table_model import ObjectRole, Runner, SortRole

Index = QModelIndex | QPersistentModelIndex
NAME, IMAGES = range(2)
PathRole = Qt.ItemDataRole.UserRole + 10


@dataclass(eq=False)
class Node:
    kind: str  # "root" | "workspace" | "project" | "repository" | "namespace"
    name: str
    label: str
    scope: Scope | None = None
    count: int | None = None
    payload: Workspace | Project | Repository | Namespace | None = None
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    loaded: bool = False
    loading: bool = False
    error: str | None = None

    @property
    def leaf(self) -> bool:
        return self.kind == "repository"

    @property
    def row(self) -> int:
        return self.parent.children.index(self) if self.parent is not None else 0

    @property
    def path(self) -> tuple[str, ...]:
        out: list[str] = []
        node: Node | None = self
        while node is not None and node.kind != "root":
            out.append(node.name)
            node = node.parent
        return tuple(reversed(out))

    @property
    def tooltip(self) -> str:
        payload = self.payload
        if isinstance(payload, Workspace):
            return (
                f"Workspace {payload.slug} ({payload.name}): "
                f"{counted(payload.project_count, 'project')}, "
                f"{counted(payload.repository_count, 'repository', 'repositories')}, "
                f"{counted(payload.image_count, 'image')}; "
                f"your role: {payload.role}"
            )
        if isinstance(payload, Project):
            return (
                f"Project {payload.key} ({payload.name}): "
                f"{counted(payload.repository_count, 'repository', 'repositories')}, "
                f"{counted(payload.image_count, 'image')}"
            )
        if isinstance(payload, Repository):
            return (
                f"Repository {payload.path}: {counted(payload.image_count, 'image')}, "
                f"{counted(payload.tag_count, 'tag')}; your permission: {payload.permission.label}"
            )
        if isinstance(payload, Namespace):
            where = f"{payload.registry}/{payload.path}" if payload.path else payload.registry
            repositories = counted(payload.image_count, "repository", "repositories")
            return f"{where}: {repositories} at or under this path"
        return self.label


ChildLoader = Callable[[Node], Awaitable[list[Node]]]


def workspace_node(w: Workspace) -> Node:
    return Node("workspace", w.slug, w.slug, Scope(w.slug), w.image_count, w)


def project_node(p: Project) -> Node:
    return Node("project", p.key, p.key, Scope(p.workspace, project=p.key), p.image_count, p)


def repository_node(r: Repository) -> Node:
    return Node(
        "repository",
        r.slug,
        r.slug,
        Scope(r.workspace, project=r.project or None, repository=r.slug),
        r.image_count,
        r,
    )


def namespace_node(n: Namespace) -> Node:
    node = Node("namespace", n.name, n.name, n.scope, n.image_count, n)
    node.loaded = not n.has_children  # no expander where nothing is deeper
    return node


class NavigatorModel(QAbstractItemModel):
    def __init__(
        self, loader: ChildLoader | None = None, runner: Runner | None = None,
        parent: QObject | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.loader = loader
        self.runner = runner
        self.root = Node("root", "", "")
        self.root.loaded = True

    # --- structure --------------------------------------------------------------
    def node(self, index: Index) -> Node:
        if not index.isValid():
            return self.root
        node = index.internalPointer()
        assert isinstance(node, Node)
        return node

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        parent_node = self.node(parent)
        if not (0 <= row < len(parent_node.children) and 0 <= column < 2):
            return QModelIndex()
        return self.createIndex(row, column, parent_node.children[row])

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        node = self.node(index).parent
        if node is None or node is self.root:
            return QModelIndex()
        return self.createIndex(node.row, 0, node)

    def index_of(self, node: Node, column: int = 0) -> QModelIndex:
        if node is self.root or node.parent is None:
            return QModelIndex()
        return self.createIndex(node.row, column, node)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self.node(parent).children)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 2

    def hasChildren(self, parent: Index = QModelIndex()) -> bool:
        if parent.isValid() and parent.column() != 0:
            return False
        node = self.node(parent)
        if node.leaf:
            return False
        return bool(node.children) or not node.loaded

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        node = self.node(parent)
        return not node.leaf and not node.loaded and not node.loading and self.loader is not None

    def fetchMore(self, parent: Index = QModelIndex()) -> None:
        node = self.node(parent)
        if not self.canFetchMore(parent):
            return  # already loaded or loading: the guard against re-entry
        self.load(node)

    def load(self, node: Node) -> Any:
        assert self.loader is not None
        assert self.runner is not None
        node.loading = True
        node.error = None
        return self.runner(
            self._load(node), name=f"tree:{'/'.join(node.path)}", on_error=self._on_error(node)
        )

    def _on_error(self, node: Node) -> Callable[[ClientError], bool]:
        def handle(error: ClientError) -> bool:
            node.loading = False
            node.error = error.message
            index = self.index_of(node)
            if index.isValid():
                self.dataChanged.emit(index, index)
            return False

        return handle

    async def _load(self, node: Node) -> list[Node]:
        assert self.loader is not None
        try:
            children = await self.loader(node)
        finally:
            node.loading = False
        self.set_children(node, children)
        return children

    def set_children(self, node: Node, children: list[Node]) -> None:
        parent = self.index_of(node)
        if node.children:
            self.beginRemoveRows(parent, 0, len(node.children) - 1)
            node.children = []
            self.endRemoveRows()
        node.loaded = True
        if children:
            self.beginInsertRows(parent, 0, len(children) - 1)
            for child in children:
                child.parent = node
            node.children = children
            self.endInsertRows()
        elif parent.isValid():
            # No children after all: let the view drop the expander.
            self.dataChanged.emit(parent, parent)

    def clear(self) -> None:
        self.beginResetModel()
        self.root.children = []
        self.root.loaded = True
        self.endResetModel()

    def find(self, path: tuple[str, ...]) -> Node | None:
        node = self.root
        for name in path:
            found = next((c for c in node.children if c.name == name), None)
            if found is None:
                return None
            node = found
        return node

    # --- data -------------------------------------------------------------------
    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node = self.node(index)
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            if index.column() == NAME:
                return node.label
            return "" if node.count is None else str(node.count)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"Could not load: {node.error}" if node.error else node.tooltip
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == IMAGES:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == SortRole:
            return node.label if index.column() == NAME else (node.count or 0)
        if role == ObjectRole:
            return node
        if role == PathRole:
            return "/".join(node.path)
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return ("Name", "Images")[section] if 0 <= section < 2 else None
        return None
