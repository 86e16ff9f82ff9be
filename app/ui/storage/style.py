"""How the storage view looks: colours that each mean something, chart styling that
follows the window's palette (light or dark), and its headings.

One hue family for bytes that tags still reach (a strong blue for exclusive bytes,
a light blue for shared ones), a warning amber for bytes held but waiting for GC,
and green for what GC gave back. The tones are mid-bright so they read on a light
and on a dark background alike.
"""

from __future__ import annotations

from PySide6.QtCharts import QChart
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QLabel, QWidget

EXCLUSIVE = QColor("#2f6fc9")  # referenced by one image: freed when that image goes
SHARED = QColor("#74b3ea")  # referenced by several images: stays while any is left
PENDING = QColor("#e8912d")  # held but unreferenced: waiting for garbage collection
FREED = QColor("#2e9e5b")  # given back by a GC run
REFERENCED = EXCLUSIVE  # the referenced line: what tags reach
STORED = PENDING.darker(115)  # the stored line bounds the pending (amber) band


def with_alpha(color: QColor, alpha: int) -> QColor:
    out = QColor(color)
    out.setAlpha(alpha)
    return out


def swatch_css(color: QColor) -> str:
    """A style sheet for a small square of ``color`` (legend swatches in the summary)."""
    return f"background-color: {color.name()}; border-radius: 2px;"


def style_chart(chart: QChart, palette: QPalette) -> None:
    """Text, axes and background from the palette, so a chart sits in the window
    like any other widget, in light and dark mode."""
    text = palette.color(QPalette.ColorRole.WindowText)
    muted = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
    chart.setBackgroundBrush(palette.color(QPalette.ColorRole.Window))
    chart.setBackgroundPen(QColor(0, 0, 0, 0))
    chart.setBackgroundRoundness(0)
    chart.setPlotAreaBackgroundVisible(False)
    chart.setTitleBrush(text)
    legend = chart.legend()
    legend.setLabelColor(text)
    legend.setBrush(QColor(0, 0, 0, 0))
    grid = with_alpha(text, 40)
    for axis in chart.axes():
        axis.setLabelsColor(text)
        axis.setTitleBrush(muted)
        axis.setLinePenColor(with_alpha(text, 110))
        axis.setGridLineColor(grid)
        axis.setMinorGridLineColor(with_alpha(text, 20))


def heading(text: str, parent: QWidget, scale: float = 1.0) -> QLabel:
    """A bold title over a part of the view."""
    label = QLabel(text, parent)
    font = label.font()
    font.setBold(True)
    if scale != 1.0:
        font.setPointSizeF(font.pointSizeF() * scale)
    label.setFont(font)
    return label
