"""The Cleanup policies tab as the window shows it: :class:`PoliciesTab` adds the
view beside the others (through :class:`~app.ui.common.window.Window`, never the
main window's class) and is what the window connects its ``connected`` and
``scopeChanged`` to."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QTabWidget

from app.client.berth_api import BerthApi
from app.ui.backends.berth import BerthBackend
from app.ui.backends.protocol import Backend, Scope
from app.ui.common.window import Window
from app.ui.policies.view import DESCRIPTION, PoliciesView


def berth_api(backend: Backend | None) -> BerthApi | None:
    """The management API client of a Berth registry (None for others: a plain OCI
    registry has no cleanup policies)."""
    return backend.api if isinstance(backend, BerthBackend) else None


class PoliciesTab(QObject):
    def __init__(self, window: Window, views: QTabWidget) -> None:
        super().__init__(views)
        self.window = window
        self.views = views
        self.view = PoliciesView(window.ops, views)
        window.add_view(self.view, "Cleanup policies", DESCRIPTION)
        window.acts.refresh.triggered.connect(self.view.refresh_if_shown)
        # After a run, what the other views show of the deleted tags is stale.
        self.view.ranCleanup.connect(lambda _scope: window.refresh())

    def connected(self, backend: Backend | None) -> None:
        api = berth_api(backend)
        self.view.set_api(api)
        # A registry without policies (plain OCI) has no use for this tab.
        visible = backend is None or api is not None
        self.views.setTabVisible(self.views.indexOf(self.view), visible)

    def scope_changed(self, scope: Scope | None) -> None:
        self.view.set_scope(scope)
