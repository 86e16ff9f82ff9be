"""Storage now vs after the run and GC, as two stacked bars (QtCharts).

*Now* is the workspace's referenced bytes split into what stays and what the
policy's deletes free (the preview's ``freed``), plus what already waits for GC.
*After* is what stays. Every part is a server figure (the workspace's storage, the
preview, or the delete impact of the plan with its exceptions); the chart only
draws them. The byte axis is scaled to one IEC unit (QValueAxis formats numbers,
not sizes), named in its title.
"""

from __future__ import annotations

from PySide6.QtCharts import (
    QBarCategoryAxis,
    QBarSet,
    QChart,
    QChartView,
    QHorizontalStackedBarSeries,
    QValueAxis,
)
from PySide6.QtCore import QEvent, QMargins, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QWidget

from app.ui.common.formatting import format_bytes

STAYS = QColor("#2f6fc9")
FREED = QColor("#2e9e5b")
PENDING = QColor("#e8912d")
UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB")
CATEGORIES = ("After run + GC", "Now")  # bottom to top: "Now" reads first


def unit_for(maximum: int) -> tuple[int, str]:
    """The IEC unit the axis counts in: the largest that keeps the maximum >= 1."""
    size, power = 1, 0
    while maximum >= size * 1024 and power < len(UNITS) - 1:
        size *= 1024
        power += 1
    return size, UNITS[power]


class StorageEffectChart(QChartView):
    def __init__(self, parent: QWidget | None = None) -> None:
        chart = QChart()
        super().__init__(chart, parent)
        self.setObjectName("policyStorageChart")
        self.setAccessibleName("Storage now and after the run")
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(150)
        chart.setMargins(QMargins(4, 4, 4, 4))
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        self.series = QHorizontalStackedBarSeries()
        self.sets: dict[str, QBarSet] = {}
        for name, color in (("Stays", STAYS), ("Freed", FREED), ("Pending GC", PENDING)):
            bar = QBarSet(name)
            bar.setColor(color)
            bar.setBorderColor(color)
            bar.append([0.0, 0.0])
            self.series.append(bar)
            self.sets[name] = bar
        self.series.setBarWidth(0.6)
        chart.addSeries(self.series)
        self.categories = QBarCategoryAxis()
        self.categories.append(list(CATEGORIES))
        chart.addAxis(self.categories, Qt.AlignmentFlag.AlignLeft)
        self.series.attachAxis(self.categories)
        self.values = QValueAxis()
        self.values.setLabelFormat("%.3g")
        chart.addAxis(self.values, Qt.AlignmentFlag.AlignBottom)
        self.series.attachAxis(self.values)
        # Exact bytes of each part (Now, After), for the tooltip and for tests.
        self.figures: dict[str, tuple[int, int]] = {}
        self._style()
        self.clear()

    def show_effect(self, referenced: int, pending: int, freed: int) -> None:
        """Now: ``referenced`` (of which ``freed`` goes) and ``pending``; after: the rest."""
        stays = max(0, referenced - freed)
        self.figures = {
            "Stays": (stays, stays),
            "Freed": (freed, 0),
            "Pending GC": (pending, 0),
        }
        size, unit = unit_for(max(stays + freed + pending, 1))
        for name, (now, after) in self.figures.items():
            # Index 0 is the bottom category (after), 1 the top one (now).
            self.sets[name].replace(0, after / size)
            self.sets[name].replace(1, now / size)
        total = (stays + freed + pending) / size
        self.values.setRange(0, max(total * 1.05, 1e-9))
        self.values.applyNiceNumbers()
        self.values.setTitleText(unit)
        text = (
            f"Now: {format_bytes(stays + freed + pending)} held "
            f"({format_bytes(freed)} freed by this run after GC, {format_bytes(pending)} "
            f"already pending GC); after the run and GC: {format_bytes(stays)}"
        )
        self.setToolTip(text)
        self.setAccessibleDescription(text)

    def clear(self) -> None:
        self.figures = {}
        for bar in self.sets.values():
            bar.replace(0, 0.0)
            bar.replace(1, 0.0)
        self.values.setRange(0, 1)
        self.values.setTitleText("")
        self.setToolTip("")
        self.setAccessibleDescription("No preview yet")

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._style()

    def _style(self) -> None:
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        chart = self.chart()
        chart.setBackgroundBrush(palette.color(QPalette.ColorRole.Window))
        chart.setBackgroundRoundness(0)
        chart.legend().setLabelColor(text)
        grid = QColor(text)
        grid.setAlpha(40)
        for axis in chart.axes():
            axis.setLabelsColor(text)
            axis.setTitleBrush(text)
            axis.setGridLineColor(grid)
