"""The application icon: every freedesktop size, found as package data, and set on
the application."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from PySide6.QtCore import QSize
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from app.ui.app_icon import DESKTOP_ID, SIZES, app_icon, icon_theme_dir


def test_every_png_size_is_there_and_square() -> None:
    hicolor = icon_theme_dir()
    for size in SIZES:
        png = hicolor / f"{size}x{size}" / "apps" / f"{DESKTOP_ID}.png"
        image = QImage.fromData(png.read_bytes(), "PNG")
        assert image.size() == QSize(size, size), png
        assert image.hasAlphaChannel(), png


def test_the_svg_is_a_square_svg() -> None:
    svg = icon_theme_dir() / "scalable" / "apps" / f"{DESKTOP_ID}.svg"
    root = ET.fromstring(svg.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == root.get("height")


def test_app_icon_offers_every_size(qapp: QApplication) -> None:
    icon = app_icon()
    assert not icon.isNull()
    assert {s.width() for s in icon.availableSizes()} == set(SIZES)
