#!/usr/bin/env python3
"""Render the application icon's PNG sizes from its SVG (run after editing the SVG).

    .venv/bin/python packaging/render-icons.py

The SVG and the PNGs live in the package (app/ui/resources/icons/hicolor, the
freedesktop icon-theme layout), so the installed app finds them as package data
and packagers copy the tree to share/icons/hicolor as it is.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

from app.ui.app_icon import DESKTOP_ID, SIZES

ROOT = Path(__file__).resolve().parent.parent
HICOLOR = ROOT / "app/ui/resources/icons/hicolor"


def main() -> int:
    _app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(HICOLOR / "scalable/apps" / f"{DESKTOP_ID}.svg"))
    if not renderer.isValid():
        print("render-icons: the SVG does not load", file=sys.stderr)
        return 1
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        out = HICOLOR / f"{size}x{size}/apps" / f"{DESKTOP_ID}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(out)):
            print(f"render-icons: cannot write {out}", file=sys.stderr)
            return 1
        print(out.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
