"""Every persisted setting, declared in one place on ``QSettings``.

Window geometry and splitter/header states are opaque Qt blobs kept under
``window/`` apart from the preferences, so a broken layout can be reset without
losing connections. Connection profiles hold no secret (those are in the keyring).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from app.client.profiles import Profile


class Settings:
    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store or QSettings("berth", "Berth")

    @classmethod
    def at(cls, path: Path) -> Settings:
        """Settings in an INI file of their own (tests, the demo)."""
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

    def _get(self, key: str, default: Any = None) -> Any:
        return self.store.value(key, default)

    def sync(self) -> None:
        self.store.sync()

    # --- window layout (opaque Qt state) -------------------------------------------
    def geometry(self) -> QByteArray | None:
        value = self._get("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def set_geometry(self, value: QByteArray) -> None:
        self.store.setValue("window/geometry", value)

    def state(self, name: str) -> QByteArray | None:
        """A splitter's or header's saved state (``name``: "splitter/main", ...)."""
        value = self._get(f"window/{name}")
        return value if isinstance(value, QByteArray) else None

    def set_state(self, name: str, value: QByteArray) -> None:
        self.store.setValue(f"window/{name}", value)

    # --- connections ---------------------------------------------------------------
    def profiles(self) -> list[Profile]:
        raw = self._get("connections/profiles", "[]")
        try:
            items = json.loads(raw) if isinstance(raw, str) else []
        except ValueError:
            items = []
        return [Profile.from_dict(i) for i in items if isinstance(i, dict)]

    def set_profiles(self, profiles: list[Profile]) -> None:
        saved = [p.to_dict() for p in profiles if not p.embedded]
        self.store.setValue("connections/profiles", json.dumps(saved))

    def last_profile(self) -> str | None:
        value = self._get("connections/last")
        return str(value) if value else None

    def set_last_profile(self, name: str | None) -> None:
        self.store.setValue("connections/last", name or "")

    # --- last selection ------------------------------------------------------------
    def last_path(self) -> tuple[str, ...]:
        value = self._get("selection/path", "")
        return tuple(p for p in str(value).split("/") if p)

    def set_last_path(self, path: tuple[str, ...]) -> None:
        self.store.setValue("selection/path", "/".join(path))

    def last_image(self) -> int | None:
        value = self._get("selection/image")
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def set_last_image(self, image_id: int | None) -> None:
        self.store.setValue("selection/image", "" if image_id is None else image_id)
