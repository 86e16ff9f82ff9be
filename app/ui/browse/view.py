"""The browse view: the images of the selected scope above the tags of the
selected image, with the current tag's details beside them."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from app.ui.browse import tags_model
from app.ui.browse.bulk_panel import BulkPanel
from app.ui.browse.details_pane import DetailsPane
from app.ui.browse.images_model import ImagesModel
from app.ui.browse.tags_model import TagsModel
from app.ui.common.table_model import Runner
from app.ui.common.table_panel import TablePanel


class BrowseView(QWidget):
    def __init__(self, runner: Runner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("browseView")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.images_model = ImagesModel(runner)
        self.images = TablePanel(
            self.images_model,
            name="images",
            title="Images",
            noun="images",
            placeholder="Filter images by name (Ctrl+F)",
            multi=False,
            parent=self,
        )
        self.tags_model = TagsModel(runner)
        self.tags = TablePanel(
            self.tags_model,
            name="tags",
            title="Tags",
            noun="tags",
            placeholder="Filter tags by name (Ctrl+F)",
            multi=True,
            sort=(tags_model.TAG, Qt.SortOrder.AscendingOrder),  # versions in order
            parent=self,
        )
        self.bulk = BulkPanel(self)
        self.details = DetailsPane(self)

        tags_box = QWidget(self)
        tags_layout = QVBoxLayout(tags_box)
        tags_layout.setContentsMargins(0, 0, 0, 0)
        tags_layout.addWidget(self.tags, 1)
        tags_layout.addWidget(self.bulk)

        self.tags_splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.tags_splitter.setObjectName("tagsSplitter")
        self.tags_splitter.addWidget(tags_box)
        self.tags_splitter.addWidget(self.details)
        self.tags_splitter.setStretchFactor(0, 3)
        self.tags_splitter.setStretchFactor(1, 1)
        self.tags_splitter.setSizes([760, 340])
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.setObjectName("browseSplitter")
        self.splitter.addWidget(self.images)
        self.splitter.addWidget(self.tags_splitter)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setChildrenCollapsible(False)
        layout.addWidget(self.splitter)
        QWidget.setTabOrder(self.images.filter, self.images.view)
        QWidget.setTabOrder(self.images.view, self.tags.filter)
        QWidget.setTabOrder(self.tags.filter, self.tags.view)
        QWidget.setTabOrder(self.tags.view, self.details.layers_view)
