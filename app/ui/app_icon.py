"""The application icon and desktop identity, from package data.

The icon ships inside the package (``app/ui/resources/icons/hicolor``, laid out as a
freedesktop icon theme), so a wheel, an editable install and the PyInstaller bundle
all find it through :mod:`importlib.resources`. ``DESKTOP_ID`` names the
``.desktop`` file and AppStream component in ``resources/``: the desktop shell
matches the running window to its launcher (and icon) by it.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from PySide6.QtGui import QIcon, QPixmap

DESKTOP_ID = "io.berth.Berth"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def icon_theme_dir() -> Traversable:
    """The ``hicolor`` directory: ``<N>x<N>/apps/<id>.png`` and ``scalable/apps/<id>.svg``."""
    return resources.files("app.ui") / "resources" / "icons" / "hicolor"


def app_icon() -> QIcon:
    """The icon at every PNG size, so small sizes stay crisp (needs a QGuiApplication).

    The PNGs are read as bytes, not by path: package data need not be plain files."""
    hicolor = icon_theme_dir()
    icon = QIcon()
    for size in SIZES:
        png = hicolor / f"{size}x{size}" / "apps" / f"{DESKTOP_ID}.png"
        pixmap = QPixmap()
        if png.is_file() and pixmap.loadFromData(png.read_bytes(), "PNG"):
            icon.addPixmap(pixmap)
    return icon
