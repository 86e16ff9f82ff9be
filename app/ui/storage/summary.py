"""The storage view's headline figures: stored, referenced, shared, pending GC,
logical size, the saving sharing gives and the bytes of uploads still open, each as
a small card with the exact bytes in its tooltip."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.client.berth_api import Storage
from app.ui.common.formatting import counted, exact_bytes, format_bytes
from app.ui.storage import style
from app.ui.storage.charts import percent


class FigureCard(QFrame):
    def __init__(
        self, title: str, meaning: str, color: QColor | None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.meaning = meaning
        self.setAccessibleName(title)
        self.setAccessibleDescription(meaning)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        top = QHBoxLayout()
        top.setSpacing(6)
        if color is not None:
            swatch = QLabel(self)
            swatch.setFixedSize(10, 10)
            swatch.setStyleSheet(style.swatch_css(color))
            swatch.setAccessibleName(f"{title} colour in the charts")
            top.addWidget(swatch, 0, Qt.AlignmentFlag.AlignVCenter)
        self.title = QLabel(title, self)
        top.addWidget(self.title, 1)
        layout.addLayout(top)
        self.value = QLabel("—", self)
        font = self.value.font()
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setBold(True)
        self.value.setFont(font)
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.value)
        self.note = QLabel("", self)
        self.note.setEnabled(False)  # the palette's muted text, in light and dark mode
        layout.addWidget(self.note)
        self.bytes: int | None = None

    def show_bytes(self, value: int, note: str = "", detail: str = "") -> None:
        self.bytes = value
        self.value.setText(format_bytes(value))
        self.note.setText(note)
        tip = f"{exact_bytes(value)}\n{self.meaning}" + (f"\n{detail}" if detail else "")
        self.setToolTip(tip)
        self.value.setToolTip(tip)
        self.setAccessibleDescription(
            f"{format_bytes(value)} ({exact_bytes(value)}). {self.meaning}"
        )

    def clear(self) -> None:
        self.bytes = None
        self.value.setText("—")
        self.note.setText("")
        self.setToolTip(self.meaning)


class StorageSummary(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Storage figures")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.stored = FigureCard(
            "Stored", "Bytes of every blob the workspace holds, each stored once", None, self
        )
        self.referenced = FigureCard(
            "Referenced", "Bytes reachable from tags (exclusive plus shared)", None, self
        )
        self.shared = FigureCard(
            "Shared", "Bytes of blobs that two or more images reference", style.SHARED, self
        )
        self.pending = FigureCard(
            "Pending GC",
            "Bytes held that no tag reaches any more: garbage collection frees them",
            style.PENDING,
            self,
        )
        self.logical = FigureCard(
            "Logical size", "What the images would take if nothing were shared", None, self
        )
        self.saving = FigureCard(
            "Saved by sharing", "Logical size minus referenced bytes", style.FREED, self
        )
        self.uploading = FigureCard(
            "Uploading",
            "Bytes that open uploads have received: not blobs yet; an abandoned upload "
            "holds them until it expires a day after its last chunk",
            None,
            self,
        )
        self.cards = (
            self.stored,
            self.referenced,
            self.shared,
            self.pending,
            self.logical,
            self.saving,
            self.uploading,
        )
        for card in self.cards:
            layout.addWidget(card, 1)

    def show_storage(self, s: Storage) -> None:
        self.stored.show_bytes(s.stored, counted(s.blob_count, "blob"))
        self.referenced.show_bytes(
            s.referenced,
            f"exclusive {format_bytes(s.exclusive)}",
            f"Exclusive (one image): {exact_bytes(s.exclusive)}; shared: {exact_bytes(s.shared)}",
        )
        self.shared.show_bytes(s.shared, f"{percent(s.shared, s.referenced)} of referenced")
        self.pending.show_bytes(s.pending, "nothing to free" if not s.pending else "awaiting GC")
        self.logical.show_bytes(s.logical, "if every image had its own copy")
        self.saving.show_bytes(s.saving, f"{percent(s.saving, s.logical)} of logical")
        opened = f"{s.upload_count:,} upload{'' if s.upload_count == 1 else 's'} open"
        self.uploading.show_bytes(s.uploading, opened if s.upload_count else "none open")

    def clear(self) -> None:
        for card in self.cards:
            card.clear()
