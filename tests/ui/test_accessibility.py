"""Accessibility: what a screen reader gets from each screen (DESIGN.md §3).

Asked of Qt's accessibility interfaces, not of widget properties, because that is
what AT-SPI reads: a button's text or a form label's buddy is a valid name, a
tooltip a valid description.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QDialog,
    QHeaderView,
    QLineEdit,
    QPlainTextEdit,
    QScrollBar,
    QTabBar,
    QTextEdit,
    QWidget,
)
from pytestqt.qtbot import QtBot

from app.client.profiles import Profile
from app.ui.backends.oci import OciBackend
from app.ui.common.confirm_delete import ConfirmDeleteDialog
from app.ui.connections.dialog import ConnectionsDialog
from app.ui.connections.login_dialog import LoginDialog
from app.ui.main_window import MainWindow
from app.ui.oci.repositories_dialog import RepositoriesDialog
from tests.support import gui
from tests.support.registry import PASSWORD, RegistryServer
from tests.ui.conftest import WindowFactory, wait_idle
from tests.ui.seed import seed_image

INTERACTIVE = (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QTabBar,
    QTextEdit,
)


def _texts(widget: QWidget, kind: QAccessible.Text) -> list[str]:
    iface = QAccessible.queryAccessibleInterface(widget)
    assert iface is not None, widget
    if isinstance(widget, QTabBar):
        # Qt reads a tab bar as its tabs: each tab's text and tooltip.
        return [iface.child(i).text(kind).strip() for i in range(widget.count())]
    return [iface.text(kind).strip()]


def _label(widget: QWidget) -> str:
    return f"{type(widget).__name__} {widget.objectName()!r} in {type(widget.parent()).__name__}"


def unnamed(top: QWidget) -> list[str]:
    """Visible interactive widgets under ``top`` without an accessible name or
    description. Header views are read as the column names of their table, scroll
    bars as parts of their scroll area, and the line edit of a combo box or spin box
    as part of its owner, which carries the name."""
    missing = []
    for widget in [top, *top.findChildren(QWidget)]:
        if widget is not top and not isinstance(widget, INTERACTIVE):
            continue
        if not widget.isVisibleTo(top) and widget is not top:
            continue
        parent = widget.parentWidget()
        if isinstance(parent, QComboBox | QAbstractSpinBox):
            continue
        if isinstance(widget, QHeaderView):  # a table's headers: its column names
            continue
        if isinstance(widget, QScrollBar):  # part of its scroll area
            continue
        if not all(_texts(widget, QAccessible.Text.Name)):
            missing.append(f"no name: {_label(widget)}")
        if not all(_texts(widget, QAccessible.Text.Description)):
            missing.append(f"no description: {_label(widget)}")
    return missing


def cell_texts(view: QWidget) -> set[str]:
    iface = QAccessible.queryAccessibleInterface(view)
    assert iface is not None
    cells = (iface.child(i) for i in range(iface.childCount()))
    return {c.text(QAccessible.Text.Name) for c in cells if c.role() == QAccessible.Role.Cell}


def tab_chain(start: QWidget) -> list[QWidget]:
    """The widgets Tab visits from ``start``, in order, once round (what Qt's
    focusNextChild walks: the focus chain, skipping what takes no Tab focus)."""
    chain, widget = [start], start.nextInFocusChain()
    while widget is not start:
        if (
            widget.focusPolicy() & Qt.FocusPolicy.TabFocus
            and widget.isVisible()
            and widget.isEnabled()
        ):
            chain.append(widget)
        widget = widget.nextInFocusChain()
    return chain


def test_main_window_dialogs_and_storage_view_are_named(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, "acme/web/frontend", ["v1", "v2", "v3"])
    window: MainWindow = make_window(registry)
    images, tags = window.browse.images.view, window.browse.tags.view
    gui.wait_row(qtbot, images, "frontend")
    gui.click_row(qtbot, images, "frontend")
    qtbot.waitUntil(lambda: len(gui.texts(tags)) == 3)
    gui.click_row(qtbot, tags, "v1")
    gui.click_row(qtbot, tags, "v2", modifier=Qt.KeyboardModifier.ControlModifier)
    wait_idle(qtbot, window)

    assert unnamed(window) == []
    # Tab follows the layout: the tree's filter and the tree, then the images, the
    # tags and the details, each filter before its table.
    browse = window.browse
    along = [
        window.navigator.tree_filter,
        window.navigator.tree,
        browse.images.filter,
        browse.images.view,
        browse.tags.filter,
        browse.tags.view,
        browse.details.layers_view,
    ]
    chain = tab_chain(window.navigator.tree_filter)
    assert all(w in chain for w in along)
    assert [w for w in chain if w in along] == along
    # Table cells expose the text the table shows.
    panel = window.browse.tags
    shown = {
        str(panel.proxy.index(r, c).data())
        for r in range(panel.proxy.rowCount())
        for c in range(panel.proxy.columnCount())
        if not panel.view.isColumnHidden(c) and panel.proxy.index(r, c).data()
    }
    assert {"v1", "v2", "v3"} <= shown
    assert shown <= cell_texts(panel.view)

    gui.click_tab(qtbot, window.views, "Storage")
    qtbot.waitUntil(lambda: window.storage.storage is not None and not window.ops.busy)
    assert unnamed(window) == []
    gui.click_tab(qtbot, window.views, "Browse")

    # The dialogs, opened as a user opens them.
    gui.click_row(qtbot, tags, "v1")
    gui.key(qtbot, window, Qt.Key.Key_Delete)
    dialog: QDialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    assert unnamed(dialog) == [], dialog.windowTitle()
    gui.click_dialog_button(qtbot, dialog, "Cancel")
    gui.gone(qtbot, dialog)
    gui.key(qtbot, window, Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier)
    dialog = gui.wait_dialog(qtbot, ConfirmDeleteDialog)
    assert dialog.typed is not None
    assert unnamed(dialog) == [], dialog.windowTitle()
    gui.click_dialog_button(qtbot, dialog, "Cancel")
    gui.gone(qtbot, dialog)
    gui.menu_bar_pick(qtbot, window, "Connection", "Connections…")
    dialog = gui.wait_dialog(qtbot, ConnectionsDialog)
    assert unnamed(dialog) == [], dialog.windowTitle()
    gui.click_dialog_button(qtbot, dialog, "Cancel")
    gui.gone(qtbot, dialog)


def test_oci_kind_window_and_its_dialogs_are_named(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, "acme/web/frontend", ["v1", "v2"])
    window: MainWindow = make_window()
    window.open_profile(Profile("berth-oci", registry.url, "root", kind="oci"), PASSWORD)
    wait_idle(qtbot, window)
    assert isinstance(window.backend, OciBackend), window.error_bar.text
    assert unnamed(window) == []

    storage = window.oci_storage
    window.views.setCurrentWidget(storage)
    storage.start_scan()
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: window.backend is not None and window.backend.last_scan is not None)
    assert unnamed(window) == []
    window.views.setCurrentWidget(window.browse)

    profile = Profile("prod", "https://registry.example", "alice")
    dialogs: list[QDialog] = [
        RepositoriesDialog(registry.host, ["acme/web/frontend"], True, window),
        LoginDialog(profile, "The password was refused.", True, window),
    ]
    for dialog in dialogs:
        dialog.show()
        qtbot.waitExposed(dialog)
        assert unnamed(dialog) == [], dialog.windowTitle()
        dialog.reject()
