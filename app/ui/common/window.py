"""What a feature may ask of the main window: the connection it shows, the shared
helpers and a few of the window's own services.

Features are handed the window as a :class:`Window` (nothing imports
``MainWindow``: the window builds the features, so they cannot know it). Signals
are not part of it: the window connects its ``connected``/``scopeChanged`` to the
features' slots where it wires them.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtWidgets import QStatusBar, QWidget

from app.client.errors import ClientError
from app.client.profiles import Profile
from app.ui.backends.protocol import Backend, Identity
from app.ui.common.actions import Actions
from app.ui.common.error_bar import ErrorBar
from app.ui.common.operations import Operations
from app.ui.common.settings import Settings


class Window(Protocol):
    ops: Operations  # every network call goes through it
    acts: Actions  # toolbar, menus and context menus share these
    settings: Settings
    error_bar: ErrorBar
    profile: Profile | None  # the connection's profile (a feature may update it)

    @property
    def backend(self) -> Backend | None: ...

    @property
    def identity(self) -> Identity | None: ...

    def statusBar(self) -> QStatusBar: ...

    def add_view(self, widget: QWidget, title: str, description: str = "") -> int:
        """A tab beside Browse."""
        ...

    def show_failure(self, error: ClientError, name: str) -> None:
        """Say what failed where failures are shown (the error bar; a login asked
        for again when the credentials stopped working)."""
        ...

    def refresh(self) -> None:
        """Read everything shown again (F5)."""
        ...

    def update_actions(self) -> None:
        """Enable and explain the actions again (capabilities found, selection)."""
        ...
