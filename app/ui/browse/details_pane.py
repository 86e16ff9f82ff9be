"""The details of the current tag: its manifest, its layers (and how many images
share each), or for an index the platforms it points to."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.client.berth_api import ChildManifest, Layer, ManifestDetail, Tag
from app.core.mediatypes import IMAGE_CONFIGS, is_index
from app.ui.common.formatting import counted, exact_bytes, format_bytes, long_time, short_digest
from app.ui.common.table_model import Column, PagedTableModel

LAYER_COLUMNS: list[Column[Layer]] = [
    Column("Digest", lambda x: short_digest(x.digest), lambda x: x.digest, lambda x: x.digest),
    Column(
        "Size",
        lambda x: format_bytes(x.size),
        lambda x: x.size,
        lambda x: exact_bytes(x.size),
        numeric=True,
    ),
    Column(
        "Shared by",
        lambda x: (
            "—"
            if x.image_count < 0
            else "this image only"
            if x.image_count <= 1
            else counted(x.image_count, "image")
        ),
        lambda x: x.image_count,
        lambda x: (
            "Not known yet: scan the registry's storage (Storage tab)"
            if x.image_count < 0
            else "Freed by GC when this image's tags go"
            if x.image_count <= 1
            else f"Referenced by {counted(x.image_count, 'image')}: kept while any of them is"
        ),
        description="How many images reference this layer",
    ),
    Column("Media type", lambda x: x.media_type, lambda x: x.media_type, lambda x: x.media_type),
]

CHILD_COLUMNS: list[Column[ChildManifest]] = [
    Column("Platform", lambda c: c.platform, lambda c: c.platform),
    Column("Digest", lambda c: short_digest(c.digest), lambda c: c.digest, lambda c: c.digest),
    Column("Size", lambda c: format_bytes(c.size), lambda c: c.size, numeric=True),
    Column("Media type", lambda c: c.media_type, lambda c: c.media_type, lambda c: c.media_type),
]


class LayersModel(PagedTableModel[Layer]):
    def __init__(self) -> None:
        # A layer listed twice in one manifest is shown once.
        super().__init__(
            LAYER_COLUMNS, key=lambda x: x.digest, search_text=lambda x: x.digest, name="layers"
        )


class ChildrenModel(PagedTableModel[ChildManifest]):
    def __init__(self) -> None:
        super().__init__(
            CHILD_COLUMNS, key=lambda c: c.digest, search_text=lambda c: c.platform,
            name="children",
        )  # fmt: skip


def _table(model: PagedTableModel[Any], name: str, description: str) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setAccessibleName(name)
    view.setAccessibleDescription(description)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.verticalHeader().setVisible(False)
    view.horizontalHeader().setStretchLastSection(True)
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    view.setTabKeyNavigation(False)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.setMinimumWidth(120)
    view.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
    return view


class DetailsPane(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("detailsPane")
        self.setAccessibleName("Tag details")
        self.setAccessibleDescription("Manifest, layers and platforms of the current tag")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.heading = QLabel("Details", self)
        font = self.heading.font()
        font.setBold(True)
        self.heading.setFont(font)
        layout.addWidget(self.heading)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.fields: dict[str, QLabel] = {}
        for key, label in (
            ("media_type", "Media type"),
            ("digest", "Digest"),
            ("size", "Size"),
            ("created", "Created"),
            ("platforms", "Platforms"),
            ("tags", "Tags"),
        ):
            value = QLabel("—", self)
            value.setTextInteractionFlags(
                Qt.TextInteractionFlag.TextSelectableByMouse
                | Qt.TextInteractionFlag.TextSelectableByKeyboard
            )
            value.setWordWrap(True)
            # A digest has no break points: let the label be narrower than its text
            # (the full text stays selectable and in the tooltip) rather than
            # pushing the tags table aside.
            value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            value.setAccessibleName(label)
            self.fields[key] = value
            form.addRow(f"{label}:", value)
        layout.addLayout(form)
        self.layers_label = QLabel("Layers", self)
        layout.addWidget(self.layers_label)
        self.layers_model = LayersModel()
        self.layers_view = _table(
            self.layers_model, "Layers", "Layers of the manifest with their sizes and sharing"
        )
        layout.addWidget(self.layers_view, 1)
        self.children_label = QLabel("Platforms in this index", self)
        layout.addWidget(self.children_label)
        self.platforms_model = ChildrenModel()
        self.children_view = _table(
            self.platforms_model, "Platforms", "The per-platform manifests this index points to"
        )
        layout.addWidget(self.children_view, 1)
        self.show_nothing()

    def _set(self, key: str, text: str, tooltip: str | None = None) -> None:
        label = self.fields[key]
        label.setText(text)
        label.setToolTip(tooltip or text)
        label.setAccessibleDescription(text)

    def show_nothing(self, message: str = "Select a tag to see its manifest and layers.") -> None:
        self.heading.setText("Details")
        self.heading.setToolTip(message)
        for key in self.fields:
            self._set(key, "—")
        self.fields["media_type"].setText(message)
        self.layers_model.set_rows([])
        self.platforms_model.set_rows([])
        self._show_tables(index=False)

    def show_loading(self, tag: Tag) -> None:
        self.heading.setText(f"Details of {tag.name}")
        self._set("media_type", tag.media_type or "—")
        self._set("digest", tag.digest)
        self._set("size", format_bytes(tag.size), exact_bytes(tag.size))
        self._set("created", long_time(tag.created) or "—")
        self._set("platforms", ", ".join(tag.platforms) or "—")
        self._set("tags", ", ".join((tag.name, *tag.other_tags)))
        self.layers_model.set_rows([])
        self.platforms_model.set_rows([])

    def show_manifest(self, tag: Tag, manifest: ManifestDetail) -> None:
        self.heading.setText(f"Details of {tag.name}")
        kind = manifest.media_type
        if manifest.artifact_type and manifest.artifact_type not in IMAGE_CONFIGS:
            kind += f" (artifact: {manifest.artifact_type})"
        self._set("media_type", kind)
        self._set("digest", manifest.digest)
        # The compressed size: the manifest with its config and layers (an index:
        # with its children), the same figure as the tags table's Size column.
        self._set("size", format_bytes(manifest.size), exact_bytes(manifest.size))
        self._set("created", long_time(manifest.created) or "—")
        self._set("platforms", ", ".join(manifest.platforms) or "—")
        self._set("tags", ", ".join(manifest.tags) or tag.name)
        index = is_index(manifest.media_type)
        self.layers_model.set_rows(manifest.layers)
        self.platforms_model.set_rows(manifest.manifests)
        self._show_tables(index=index)
        for view in (self.layers_view, self.children_view):
            # The media type (last, stretched) takes what is left, elided, full in
            # its tooltip: sized to its contents it pushed the sharing out of sight.
            for column in range(view.model().columnCount() - 1):
                view.resizeColumnToContents(column)

    def _show_tables(self, *, index: bool) -> None:
        self.layers_label.setVisible(not index)
        self.layers_view.setVisible(not index)
        self.children_label.setVisible(index)
        self.children_view.setVisible(index)
