"""Packaging tests: the desktop files, the icon, and the built wheel installed and
run outside the source tree."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
