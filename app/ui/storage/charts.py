"""The storage view's charts (QtCharts), fed with the management API's figures.

* :class:`CompositionChart`: a donut of exclusive / shared / pending-GC bytes (the
  three add up to what is stored).
* :class:`RepositoriesChart`: the largest repositories as horizontal bars split into
  exclusive and shared bytes; clicking a bar emits ``repositoryClicked``.
* :class:`HistoryChart`: stored and referenced bytes over time, the band between
  them (pending GC) filled amber, GC runs marked; hovering a mark tells the run.

Series hold exact bytes (tests read them back); the byte axes are category axes
whose labels are IEC sizes at round steps, since QValueAxis only formats numbers.
Each chart re-styles itself when the window's palette changes (dark mode).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from PySide6.QtCharts import (
    QAreaSeries,
    QBarCategoryAxis,
    QBarSet,
    QCategoryAxis,
    QChart,
    QChartView,
    QDateTimeAxis,
    QHorizontalStackedBarSeries,
    QLineSeries,
    QPieSeries,
    QPieSlice,
    QScatterSeries,
)
from PySide6.QtCore import QDateTime, QEvent, QMargins, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QPainter, QPalette, QPen, QResizeEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QToolTip, QWidget

from app.client.berth_api import GcRun, RepositoryStorage, Storage, StorageHistory, StorageSample
from app.ui.common.formatting import counted, exact_bytes, format_bytes
from app.ui.storage import style

REPOSITORIES_SHOWN = 10
_KIB = 1024
_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
TRIGGER_WORDS = {
    "tag_repush": "tag moved",
    "tag_delete": "tag deleted",
    "image_delete": "image deleted",
    "manifest_by_digest": "manifest pushed by digest",
    "manifest_delete": "manifest deleted",
    "index_delete": "index deleted",
    "blob_upload": "blob uploaded",
    "blob_unlink": "blob unlinked",
    "grace_retry": "upload grace ended",
    "manual": "run now",
}


def byte_ticks(maximum: float, target: int = 5) -> list[int]:
    """Round tick values from 0 to at least ``maximum``: 1, 2 or 5 times a power of
    ten of one IEC unit, at most ``target`` steps."""
    if maximum <= 0:
        return [0, _KIB]
    unit = 1
    while maximum / unit >= _KIB and unit < _KIB**5:
        unit *= _KIB
    span = maximum / unit
    step = next((s for s in _STEPS if span / s <= target), _STEPS[-1] * 2)
    count = max(1, math.ceil(span / step - 1e-9))
    return [i * step * unit for i in range(count + 1)]


def tick_label(value: int) -> str:
    return format_bytes(value).replace(".0 ", " ")


# Reviews every push queues: listed after what an admin did.
ROUTINE_TRIGGERS = ("blob_upload", "manifest_by_digest", "grace_retry")


def trigger_text(triggers: Sequence[str], *, brief: bool = False) -> str:
    """What queued a run's reviews; ``brief`` leaves out the routine upload reviews
    when anything else did (a table cell; the tooltip says all)."""
    ordered = sorted(triggers, key=lambda t: (t in ROUTINE_TRIGGERS, t != "manual", t))
    if brief and any(t not in ROUTINE_TRIGGERS for t in ordered):
        ordered = [t for t in ordered if t not in ROUTINE_TRIGGERS]
    return ", ".join(TRIGGER_WORDS.get(t, t.replace("_", " ")) for t in ordered) or "—"


def duration_text(ms: int) -> str:
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def run_text(run: GcRun) -> str:
    """What a GC run did, in one paragraph (the history chart's hover, the GC panel)."""
    when = run.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if run.started_at else "?"
    return (
        f"GC run at {when}\n"
        f"Trigger: {trigger_text(run.triggers)}\n"
        f"Freed {format_bytes(run.bytes_freed)} ({exact_bytes(run.bytes_freed)}): "
        f"{counted(run.blobs_deleted, 'blob')}, {counted(run.manifests_deleted, 'manifest')}\n"
        f"Took {duration_text(run.duration_ms)}"
    )


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "0%"


class ByteAxis(QCategoryAxis):
    """A value axis labelled in IEC units at round steps."""

    def __init__(self) -> None:
        super().__init__()
        self.setLabelsPosition(QCategoryAxis.AxisLabelsPosition.AxisLabelsPositionOnValue)
        self.ticks: list[int] = []
        self.maximum = 0.0
        self.target = 5
        self.set_maximum(0)

    def set_target(self, target: int) -> None:
        """At most ``target`` steps (fewer when the chart is small: labels never overlap)."""
        if target != self.target:
            self.target = target
            self.set_maximum(self.maximum)

    def set_maximum(self, maximum: float) -> None:
        self.maximum = maximum
        ticks = byte_ticks(maximum, self.target)
        if ticks == self.ticks:
            return
        for label in self.categoriesLabels():
            self.remove(label)
        self.setStartValue(0)
        for value in ticks:
            self.append(tick_label(value), value)
        self.setRange(0, ticks[-1])
        self.ticks = ticks


class _Chart(QChartView):
    """A chart view that follows the palette and says what it shows to screen readers."""

    def __init__(self, title: str, description: str, parent: QWidget | None) -> None:
        chart = QChart()
        chart.setTitle(title)
        chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        chart.setMargins(QMargins(4, 4, 4, 4))
        chart.layout().setContentsMargins(0, 0, 0, 0)
        super().__init__(chart, parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setAccessibleName(title)
        self.setAccessibleDescription(description)
        self.setMinimumSize(240, 200)
        self._built = False  # set by subclasses once their series exist

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and self._built:
            self.restyle()

    def restyle(self) -> None:
        style.style_chart(self.chart(), self.palette())
        for axis in self.chart().axes():
            axis.setTruncateLabels(False)  # an elided size ("5 …") says nothing

    def show_tip(self, text: str) -> None:
        QToolTip.showText(QCursor.pos(), text, self)

    @property
    def background(self) -> QColor:
        return self.palette().color(QPalette.ColorRole.Window)


class CompositionChart(_Chart):
    """What the stored bytes are: exclusive, shared, pending GC."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Stored bytes",
            "Donut of stored bytes: exclusive to one image, shared by several, pending GC",
            parent,
        )
        self.series = QPieSeries()
        self.series.setHoleSize(0.5)
        self.series.setPieSize(0.9)
        self.exclusive = QPieSlice("Exclusive", 0)
        self.shared = QPieSlice("Shared", 0)
        self.pending = QPieSlice("Pending GC", 0)
        self.meaning = {
            self.exclusive: "referenced by one image only: freed by GC once that image goes",
            self.shared: "referenced by two or more images: stored once",
            self.pending: "no tag reaches these any more: freed when GC runs",
        }
        for piece, color in (
            (self.exclusive, style.EXCLUSIVE),
            (self.shared, style.SHARED),
            (self.pending, style.PENDING),
        ):
            piece.setColor(color)
            piece.setLabelVisible(False)
            piece.hovered.connect(lambda on, s=piece: self._hovered(s, on))
            self.series.append(piece)
        chart = self.chart()
        chart.addSeries(self.series)
        # QLegend elides long labels in a narrow chart: DonutLegend beside it instead.
        chart.legend().hide()
        self.setMinimumSize(160, 160)
        self.total = 0
        self._built = True
        self.restyle()

    def restyle(self) -> None:
        super().restyle()
        for piece in self.series.slices():
            piece.setBorderColor(self.background)
            piece.setBorderWidth(2)

    def show_storage(self, storage: Storage) -> None:
        self.total = storage.stored
        for piece, value in (
            (self.exclusive, storage.exclusive),
            (self.shared, storage.shared),
            (self.pending, storage.pending),
        ):
            piece.setValue(value)
        self.chart().setTitle(f"Stored: {format_bytes(storage.stored)}")
        self.setAccessibleDescription(
            f"Stored {format_bytes(storage.stored)}: exclusive {format_bytes(storage.exclusive)},"
            f" shared {format_bytes(storage.shared)}, pending GC {format_bytes(storage.pending)}"
        )

    def slice_tip(self, piece: QPieSlice) -> str:
        name = piece.label()
        value = int(piece.value())
        return (
            f"{name}: {format_bytes(value)} ({exact_bytes(value)}, {percent(value, self.total)} "
            f"of stored)\n{self.meaning[piece]}"
        )

    def _hovered(self, piece: QPieSlice, on: bool) -> None:
        piece.setExploded(on)
        if on:
            self.show_tip(self.slice_tip(piece))
        else:
            QToolTip.hideText()


class DonutLegend(QWidget):
    """The donut's legend: swatch, name, size and share of each slice."""

    def __init__(self, chart: CompositionChart, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chart = chart
        self.setAccessibleName("Stored bytes legend")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(6)
        self.rows: dict[QPieSlice, tuple[QLabel, QLabel, QLabel]] = {}
        for row, piece in enumerate(chart.series.slices()):
            swatch = QLabel(self)
            swatch.setFixedSize(12, 12)
            swatch.setStyleSheet(style.swatch_css(piece.color()))
            name = QLabel(piece.label(), self)
            value = QLabel("—", self)
            font = value.font()
            font.setBold(True)
            value.setFont(font)
            share = QLabel("", self)
            share.setEnabled(False)  # muted text in light and dark mode
            grid.addWidget(swatch, row, 0, Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(name, row, 1)
            grid.addWidget(value, row, 2, Qt.AlignmentFlag.AlignRight)
            grid.addWidget(share, row, 3, Qt.AlignmentFlag.AlignRight)
            self.rows[piece] = (name, value, share)
        grid.setRowStretch(len(self.rows), 1)

    def refresh(self) -> None:
        for piece, (name, value, share) in self.rows.items():
            size = int(piece.value())
            value.setText(format_bytes(size))
            share.setText(percent(size, self.chart.total))
            tip = self.chart.slice_tip(piece)
            for label in (name, value, share):
                label.setToolTip(tip)


class RepositoriesChart(_Chart):
    """The largest repositories, exclusive and shared bytes stacked."""

    repositoryClicked = Signal(object)  # RepositoryStorage

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Largest repositories",
            "Bars of the largest repositories, exclusive and shared bytes; "
            "click a bar to select the repository",
            parent,
        )
        self.series = QHorizontalStackedBarSeries()
        self.series.setBarWidth(0.7)
        self.exclusive = QBarSet("Exclusive")
        self.shared = QBarSet("Shared")
        for bars, color in ((self.exclusive, style.EXCLUSIVE), (self.shared, style.SHARED)):
            bars.setColor(color)
            bars.setBorderColor(color)
            bars.clicked.connect(self._clicked)
            bars.hovered.connect(self._hovered)
            self.series.append(bars)
        self.names = QBarCategoryAxis()
        self.values = ByteAxis()
        chart = self.chart()
        chart.addSeries(self.series)
        # Room on the right for the last tick's label, centred on the axis end.
        chart.setMargins(QMargins(4, 4, 22, 4))
        chart.addAxis(self.names, Qt.AlignmentFlag.AlignLeft)
        chart.addAxis(self.values, Qt.AlignmentFlag.AlignBottom)
        self.series.attachAxis(self.names)
        self.series.attachAxis(self.values)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.shown: list[RepositoryStorage] = []  # bottom to top, as drawn
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._built = True
        self.restyle()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.values.set_target(max(2, self.width() // 110))

    def show_repositories(
        self, repositories: Sequence[RepositoryStorage], limit: int = REPOSITORIES_SHOWN
    ) -> None:
        ranked = sorted(repositories, key=lambda r: (-(r.exclusive + r.shared), r.slug))
        top = [r for r in ranked if r.exclusive + r.shared > 0][:limit]
        # Horizontal bar charts draw the first category at the bottom: largest on top.
        self.shown = list(reversed(top))
        for bars in (self.exclusive, self.shared):
            bars.remove(0, bars.count())
        self.exclusive.append([float(r.exclusive) for r in self.shown])
        self.shared.append([float(r.shared) for r in self.shown])
        self.names.clear()
        self.names.append([r.slug for r in self.shown] or [""])
        self.values.set_maximum(max((r.exclusive + r.shared for r in top), default=0))
        title = "Largest repositories"
        if len(ranked) > len(top) and top:
            title += f" (top {len(top)} of {len(ranked)})"
        elif not top:
            title += ": none hold any bytes yet"
        self.chart().setTitle(title)
        self.setAccessibleDescription(
            "; ".join(
                f"{r.slug}: exclusive {format_bytes(r.exclusive)}, shared {format_bytes(r.shared)}"
                for r in reversed(self.shown)
            )
            or "No repository holds any bytes yet"
        )
        self.restyle()

    def bar_tip(self, index: int) -> str:
        r = self.shown[index]
        return (
            f"{r.slug} (project {r.project or '—'}), {counted(r.image_count, 'image')}\n"
            f"Exclusive: {format_bytes(r.exclusive)} ({exact_bytes(r.exclusive)})\n"
            f"Shared with other images: {format_bytes(r.shared)} ({exact_bytes(r.shared)})\n"
            "Click to select this repository"
        )

    def _clicked(self, index: int) -> None:
        if 0 <= index < len(self.shown):
            self.repositoryClicked.emit(self.shown[index])

    def _hovered(self, on: bool, index: int) -> None:
        if on and 0 <= index < len(self.shown):
            self.show_tip(self.bar_tip(index))
        else:
            QToolTip.hideText()


def _ms(when: datetime | None) -> float:
    return (when or datetime.now(UTC)).timestamp() * 1000


class HistoryChart(_Chart):
    """Stored bytes over time as two stacked bands, referenced (blue) and pending GC
    (amber) on top, so the top edge is what is stored; GC runs marked on it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Storage over time",
            "Referenced bytes and, stacked on them, bytes pending GC over time (together "
            "what is stored), with garbage collection runs marked",
            parent,
        )
        # The bands' edges: referenced, and stored (= referenced + pending) above it.
        self.referenced = QLineSeries(self)
        self.stored = QLineSeries(self)
        self._pending_floor = QLineSeries(self)
        self.referenced_band = QAreaSeries(self.referenced)
        self.referenced_band.setName("Referenced")
        self.pending = QAreaSeries(self.stored, self._pending_floor)
        self.pending.setName("Pending GC")
        self.runs = QScatterSeries()
        self.runs.setName("GC runs")
        self.runs.setMarkerShape(QScatterSeries.MarkerShape.MarkerShapeCircle)
        self.runs.setMarkerSize(10)
        self.runs.hovered.connect(self._hovered)
        self.time = QDateTimeAxis()
        self.time.setTickCount(5)
        self.values = ByteAxis()
        chart = self.chart()
        shown = (self.referenced_band, self.pending, self.runs)
        for series in shown:
            chart.addSeries(series)
        chart.setMargins(QMargins(4, 4, 22, 4))  # the last date label is centred on the end
        chart.addAxis(self.time, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(self.values, Qt.AlignmentFlag.AlignLeft)
        for series in shown:
            series.attachAxis(self.time)
            series.attachAxis(self.values)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.run_points: list[tuple[QPointF, GcRun]] = []
        self._built = True
        self.restyle()

    def restyle(self) -> None:
        super().restyle()
        self.referenced_band.setBrush(style.with_alpha(style.REFERENCED, 70))
        self.referenced_band.setPen(QPen(style.REFERENCED, 2))
        self.pending.setBrush(style.with_alpha(style.PENDING, 170))
        self.pending.setPen(QPen(Qt.PenStyle.NoPen))
        self.runs.setColor(style.FREED)
        self.runs.setBorderColor(self.background)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.values.set_target(max(2, self.height() // 50))

    def show_history(self, history: StorageHistory, now: StorageSample | None = None) -> None:
        """Draw the samples, plus ``now`` (the current figures) as the last point:
        the server samples at most every few seconds, the summary is live."""
        samples = list(history.samples)
        if now is not None and (not samples or _ms(now.at) > _ms(samples[-1].at)):
            samples.append(now)
        xs = [_ms(s.at) for s in samples]
        stored = [QPointF(x, s.stored) for x, s in zip(xs, samples, strict=True)]
        referenced = [QPointF(x, s.referenced) for x, s in zip(xs, samples, strict=True)]
        self.stored.replace(stored)
        self.referenced.replace(referenced)
        self._pending_floor.replace(referenced)
        single = len(samples) == 1
        self.referenced_band.setPointsVisible(single)
        self.pending.setPointsVisible(single)

        # Each run sits on the stored edge as it was when the run started.
        self.run_points = []
        for run in history.gc_runs:
            x = _ms(run.started_at)
            at = bisect.bisect_right(xs, x) - 1
            y = stored[max(at, 0)].y() if stored else 0.0
            self.run_points.append((QPointF(x, y), run))
        self.runs.replace([p for p, _ in self.run_points])

        all_x = xs + [p.x() for p, _ in self.run_points]
        first, last = (min(all_x), max(all_x)) if all_x else (_ms(None) - 60_000, _ms(None))
        if last - first < 60_000:
            first, last = first - 30_000, last + 30_000
        self.time.setRange(
            QDateTime.fromMSecsSinceEpoch(int(first)), QDateTime.fromMSecsSinceEpoch(int(last))
        )
        self.time.setFormat(_time_format(last - first))
        self.values.set_maximum(max((p.y() for p in stored), default=0))
        latest = samples[-1] if samples else None
        self.setAccessibleDescription(
            f"{counted(len(samples), 'point')}, {counted(len(self.run_points), 'GC run')}"
            + (
                f"; now stored {format_bytes(latest.stored)}, referenced "
                f"{format_bytes(latest.referenced)}"
                if latest
                else ""
            )
        )
        self.restyle()

    def run_near(self, point: QPointF) -> GcRun | None:
        if not self.run_points:
            return None
        _, run = min(self.run_points, key=lambda pr: abs(pr[0].x() - point.x()))
        return run

    def _hovered(self, point: QPointF, on: bool) -> None:
        run = self.run_near(point) if on else None
        if run is not None:
            self.show_tip(run_text(run))
        else:
            QToolTip.hideText()


def _time_format(span_ms: float) -> str:
    if span_ms < 15 * 60_000:
        return "HH:mm:ss"
    if span_ms < 2 * 86_400_000:
        return "HH:mm"
    if span_ms < 300 * 86_400_000:
        return "MMM d"
    return "MMM yyyy"
