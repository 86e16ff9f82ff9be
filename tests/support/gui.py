"""Using the real widgets as a person does: clicks, drags, wheel turns, keys, context
menus opened with the right button, dialogs answered with their buttons.

Every pointer and key event goes in through the top-level window (QTest's QWindow
overloads, the path the window system's events take), never straight to a widget:
Qt itself finds the widget under the pointer or holding the focus, a window-modal
dialog blocks clicks on the window behind it, a right click opens the context menu
as it does on a desktop, and shortcuts fire where their context allows. A helper
first checks that the widget it aims at is really the one under that point (not
hidden, not covered), as a user would see before clicking.

Nothing here calls a slot, selects through a selection model or sets a current
index: tests written with these helpers read as a user's steps, and what they
assert is what the user can see (texts, enabled states, tooltips) and what the
server holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from PySide6.QtCore import QModelIndex, QPoint, QPointF, QRect, Qt, QTimer
from PySide6.QtGui import QAction, QWheelEvent, QWindow
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLineEdit,
    QMenu,
    QTreeView,
    QWidget,
)
from pytestqt.qtbot import QtBot

W = TypeVar("W", bound=QWidget)
WAIT_MS = 30_000
LEFT = Qt.MouseButton.LeftButton
RIGHT = Qt.MouseButton.RightButton
NO_MOD = Qt.KeyboardModifier.NoModifier


def plain(text: str) -> str:
    """An action's or button's text as shown (mnemonic ampersands gone)."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&")


# --- where things are -------------------------------------------------------------
# PySide6 deletes a combo box's popup (a private Qt class) when the last Python
# wrapper of it that QWidget.window() handed out goes away: keep them.
_POPUPS: list[QWidget] = []


def _window_of(widget: QWidget) -> tuple[QWindow, QWidget]:
    top = widget.window()
    if top.windowType() == Qt.WindowType.Popup and not isinstance(top, QMenu):
        _POPUPS.append(top)
    handle = top.windowHandle()
    assert handle is not None, f"{widget!r} is not in a shown window"
    return handle, top


def _activate(qtbot: QtBot, top: QWidget) -> None:
    """What a desktop's window manager does when a window is clicked: make it the
    active window (the offscreen and bare X platforms have no window manager, so a
    window stays inactive after a dialog over it closes, and shortcuts, which need
    an active window, would not fire)."""
    if top.isActiveWindow() or top.windowType() == Qt.WindowType.Popup:
        return
    top.activateWindow()
    qtbot.waitUntil(top.isActiveWindow, timeout=5_000)


def _aim(widget: QWidget, pos: QPoint) -> tuple[QWindow, QPoint]:
    """The window and window position of ``pos`` in ``widget``; fails when the user
    could not click there (the widget hidden, disabled, or covered by another)."""
    assert widget.isVisible(), f"{_name(widget)} is not visible"
    assert widget.rect().contains(pos), f"{pos} is outside {_name(widget)}"
    handle, top = _window_of(widget)
    at = widget.mapTo(top, pos)
    hit = top.childAt(at) or top
    assert hit is widget or widget.isAncestorOf(hit), (
        f"{_name(hit)} covers {_name(widget)} at {pos}"
    )
    return handle, at


def _name(widget: QWidget) -> str:
    return f"{type(widget).__name__}({widget.objectName() or widget.accessibleName()!r})"


def click(
    qtbot: QtBot,
    widget: QWidget,
    pos: QPoint | None = None,
    *,
    button: Qt.MouseButton = LEFT,
    modifier: Qt.KeyboardModifier = NO_MOD,
) -> None:
    """Click ``widget`` (at ``pos``, default its centre)."""
    handle, at = _aim(widget, pos if pos is not None else widget.rect().center())
    _activate(qtbot, _window_of(widget)[1])
    qtbot.mouseClick(handle, button, modifier, at)


def double_click(qtbot: QtBot, widget: QWidget, pos: QPoint | None = None) -> None:
    handle, at = _aim(widget, pos if pos is not None else widget.rect().center())
    _activate(qtbot, _window_of(widget)[1])
    qtbot.mouseDClick(handle, LEFT, NO_MOD, at)


def hover(qtbot: QtBot, widget: QWidget, pos: QPoint | None = None) -> None:
    handle, at = _aim(widget, pos if pos is not None else widget.rect().center())
    qtbot.mouseMove(handle, at)


def click_button(qtbot: QtBot, button: QAbstractButton) -> None:
    """Click a button, which must be enabled (a user cannot click a greyed one)."""
    assert button.isEnabled(), f"{plain(button.text())!r} is greyed out: {button.toolTip()}"
    click(qtbot, button)


def key(
    qtbot: QtBot, widget: QWidget, key_: Qt.Key, modifier: Qt.KeyboardModifier = NO_MOD
) -> None:
    """Press a key in ``widget``'s window: it goes to whatever holds the focus there,
    and the window's shortcuts apply as they would. With no window active (a dialog
    over it just closed), the window becomes active first, as a window manager
    hands the focus back to the window under a closed dialog."""
    handle, top = _window_of(widget)
    if QApplication.activeWindow() is None:
        _activate(qtbot, top)
    qtbot.keyClick(handle, key_, modifier)


def type_text(qtbot: QtBot, widget: QWidget, text: str) -> None:
    """Click into a field and type, key by key."""
    click(qtbot, widget)
    assert widget.hasFocus(), f"{_name(widget)} did not take the focus"
    handle, _top = _window_of(widget)
    for char in text:
        qtbot.keyClick(handle, char)


def replace_text(qtbot: QtBot, field: QLineEdit, text: str) -> None:
    """Click into a field, select everything (Ctrl+A), and type over it."""
    click(qtbot, field)
    key(qtbot, field, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    if not text:
        key(qtbot, field, Qt.Key.Key_Delete)
        return
    handle, _top = _window_of(field)
    for char in text:
        qtbot.keyClick(handle, char)


def wheel(qtbot: QtBot, widget: QWidget, notches: int) -> None:
    """Turn the mouse wheel over ``widget`` (positive: towards the user, scrolls down)."""
    centre = widget.rect().center()
    for _ in range(abs(notches)):
        event = QWheelEvent(
            QPointF(centre),
            QPointF(widget.mapToGlobal(centre)),
            QPoint(0, 0),
            QPoint(0, -120 if notches > 0 else 120),
            Qt.MouseButton.NoButton,
            NO_MOD,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(widget, event)
        qtbot.wait(1)


# --- item views --------------------------------------------------------------------
def texts(view: QAbstractItemView, column: int = 0, parent: QModelIndex | None = None) -> list[str]:
    """The texts a column shows, top to bottom."""
    model = view.model()
    parent = parent or QModelIndex()
    return [str(model.index(r, column, parent).data()) for r in range(model.rowCount(parent))]


def row_texts(view: QAbstractItemView, row: int) -> list[str]:
    """One row's texts as shown, visible columns only."""
    model = view.model()
    out = []
    for column in range(model.columnCount()):
        hidden = getattr(view, "isColumnHidden", None)
        if hidden is not None and hidden(column):
            continue
        value = model.index(row, column).data()
        out.append("" if value is None else str(value))
    return out


def find_row(
    view: QAbstractItemView, text: str, column: int = 0, parent: QModelIndex | None = None
) -> QModelIndex:
    """The index of the row whose ``column`` shows ``text`` (fails if none does)."""
    model = view.model()
    parent = parent or QModelIndex()
    for row in range(model.rowCount(parent)):
        index = model.index(row, column, parent)
        if str(index.data()) == text:
            return index
    raise AssertionError(f"no row shows {text!r} in {_name(view)}: {texts(view, column, parent)}")


def wait_row(
    qtbot: QtBot, view: QAbstractItemView, text: str, column: int = 0, timeout: int = WAIT_MS
) -> QModelIndex:
    """Wait until a row shows ``text``; its index."""
    qtbot.waitUntil(lambda: text in texts(view, column), timeout=timeout)
    return find_row(view, text, column)


def _visible_rect(qtbot: QtBot, view: QAbstractItemView, index: QModelIndex) -> QRect:
    """The index's rectangle in the viewport, scrolled into sight with the wheel."""
    viewport = view.viewport()
    for _ in range(400):
        rect = view.visualRect(index)
        if rect.isValid() and rect.top() >= 0 and rect.bottom() <= viewport.height():
            return rect
        if not rect.isValid():
            break
        wheel(qtbot, viewport, 1 if rect.bottom() > viewport.height() else -1)
    raise AssertionError(f"row {index.row()} of {_name(view)} cannot be scrolled into sight")


def index_point(qtbot: QtBot, view: QAbstractItemView, index: QModelIndex) -> QPoint:
    """Where to point at ``index`` (viewport coordinates), scrolled into sight."""
    rect = _visible_rect(qtbot, view, index)
    return QPoint(rect.left() + min(12, rect.width() // 2), rect.center().y())


def click_index(
    qtbot: QtBot,
    view: QAbstractItemView,
    index: QModelIndex,
    *,
    modifier: Qt.KeyboardModifier = NO_MOD,
    button: Qt.MouseButton = LEFT,
) -> None:
    click(qtbot, view.viewport(), index_point(qtbot, view, index), button=button,
          modifier=modifier)  # fmt: skip


def click_row(
    qtbot: QtBot,
    view: QAbstractItemView,
    row: int | str,
    column: int = 0,
    *,
    modifier: Qt.KeyboardModifier = NO_MOD,
) -> QModelIndex:
    """Click a row (by number, or by the text its ``column`` shows)."""
    index = find_row(view, row, column) if isinstance(row, str) else view.model().index(row, 0)
    click_index(qtbot, view, index, modifier=modifier)
    return index


def double_click_row(qtbot: QtBot, view: QAbstractItemView, index: QModelIndex) -> None:
    double_click(qtbot, view.viewport(), index_point(qtbot, view, index))


def drag_rows(qtbot: QtBot, view: QAbstractItemView, first: int, last: int) -> None:
    """Press on row ``first``, move down (or up) in small steps with the button held,
    release on row ``last``: a rubber-band row selection."""
    model = view.model()
    viewport = view.viewport()
    start = index_point(qtbot, view, model.index(first, 0))
    end = index_point(qtbot, view, model.index(last, 0))
    handle, at = _aim(viewport, start)
    _activate(qtbot, _window_of(viewport)[1])
    qtbot.mousePress(handle, LEFT, NO_MOD, at)
    step = 4 if end.y() >= start.y() else -4
    for y in range(start.y(), end.y(), step):
        qtbot.mouseMove(handle, viewport.mapTo(viewport.window(), QPoint(start.x(), y)))
    handle, at = _aim(viewport, end)
    qtbot.mouseMove(handle, at)
    qtbot.mouseRelease(handle, LEFT, NO_MOD, at)


def tree_index(tree: QTreeView, path: Iterable[str]) -> QModelIndex:
    """The index of the item at ``path`` (the texts of column 0, top down)."""
    parent = QModelIndex()
    index = QModelIndex()
    for name in path:
        index = find_row(tree, name, 0, parent)
        parent = index
    return index


def click_expander(qtbot: QtBot, tree: QTreeView, index: QModelIndex) -> None:
    """Click the arrow left of a tree item (expands or collapses it)."""
    rect = _visible_rect(qtbot, tree, index)
    # The branch indicator sits in the indentation just left of the item's text.
    pos = QPoint(rect.left() - tree.indentation() // 2, rect.center().y())
    click(qtbot, tree.viewport(), pos)


def open_tree_path(qtbot: QtBot, tree: QTreeView, path: list[str], timeout: int = WAIT_MS) -> None:
    """Expand the tree down ``path`` by clicking the arrows (waiting for each level
    to load) and click the last item."""
    for depth in range(len(path)):
        wanted = path[: depth + 1]

        def there(p: list[str] = wanted) -> bool:
            try:
                tree_index(tree, p)
            except AssertionError:
                return False
            return True

        qtbot.waitUntil(there, timeout=timeout)
        index = tree_index(tree, wanted)
        if depth + 1 < len(path) and not tree.isExpanded(index):
            click_expander(qtbot, tree, index)
            qtbot.waitUntil(lambda i=index: tree.isExpanded(i), timeout=timeout)
    click_index(qtbot, tree, tree_index(tree, path))


# --- menus -------------------------------------------------------------------------
def popup_menu(qtbot: QtBot, timeout: int = 5_000) -> QMenu:
    """The menu that popped up."""
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu), timeout=timeout)
    menu = QApplication.activePopupWidget()
    assert isinstance(menu, QMenu)
    return menu


def menu_action(menu: QMenu, text: str) -> QAction:
    for action in menu.actions():
        # A greyed entry may say why after its label: "Delete image… (needs admin …)".
        label = plain(action.text()).split(" (")[0]
        if not action.isSeparator() and label.rstrip("…") == text.rstrip("…"):
            return action
    shown = [plain(a.text()) for a in menu.actions() if not a.isSeparator()]
    raise AssertionError(f"the menu has no {text!r}: {shown}")


def menu_items(menu: QMenu) -> list[tuple[str, bool]]:
    """(text, enabled) of each entry, top to bottom."""
    return [(plain(a.text()), a.isEnabled()) for a in menu.actions() if not a.isSeparator()]


def pick(qtbot: QtBot, menu: QMenu, text: str) -> None:
    """Click an entry of an open menu (it must be enabled). An entry greyed while the
    window is still checking the user's permission is waited for, as a person waits
    for it with the menu open (the menu shows the action's state as it changes); one
    greyed for a reason fails."""
    action = menu_action(menu, text)
    qtbot.waitUntil(lambda: "checking" not in action.toolTip(), timeout=30_000)
    assert action.isEnabled(), f"{text!r} is greyed out: {action.toolTip()}"
    click(qtbot, menu, menu.actionGeometry(action).center())


def close_menu(qtbot: QtBot, menu: QMenu) -> None:
    """Escape closes the menu (which may delete itself on closing)."""
    key(qtbot, menu, Qt.Key.Key_Escape)
    gone(qtbot, menu, timeout=5_000)


def right_click(qtbot: QtBot, widget: QWidget, pos: QPoint | None = None) -> QMenu:
    """Right-click ``widget``; the context menu that opens. A menu that runs its own
    event loop (``QMenu.exec``) would keep the click from returning: it is closed
    after a while and the test fails, rather than hanging."""
    stuck: list[bool] = []

    def watchdog() -> None:
        menu = QApplication.activePopupWidget()
        if menu is not None:
            stuck.append(True)
            menu.close()

    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(watchdog)
    timer.start(10_000)
    try:
        click(qtbot, widget, pos, button=RIGHT)
    finally:
        timer.stop()
    assert not stuck, "the context menu ran its own event loop (exec), out of the test's reach"
    return popup_menu(qtbot)


def right_click_index(qtbot: QtBot, view: QAbstractItemView, index: QModelIndex) -> QMenu:
    return right_click(qtbot, view.viewport(), index_point(qtbot, view, index))


def right_click_and_pick(
    qtbot: QtBot, view: QAbstractItemView, index: QModelIndex, text: str
) -> None:
    """Right-click a row and pick ``text`` from its context menu."""
    pick(qtbot, right_click_index(qtbot, view, index), text)


def menu_bar_pick(qtbot: QtBot, window: QWidget, *path: str) -> None:
    """Open a menu bar menu by clicking its title, then click down ``path``."""
    bar = window.menuBar()  # type: ignore[attr-defined]
    title = next(a for a in bar.actions() if plain(a.text()) == path[0])
    click(qtbot, bar, bar.actionGeometry(title).center())
    menu = popup_menu(qtbot)
    for text in path[1:-1]:
        action = menu_action(menu, text)
        click(qtbot, menu, menu.actionGeometry(action).center())
        menu = popup_menu(qtbot)
    pick(qtbot, menu, path[-1])


def choose_in_combo(qtbot: QtBot, combo: QComboBox, text: str) -> None:
    """Open a combo box with a click and click ``text`` in its list."""
    click(qtbot, combo)
    qtbot.waitUntil(lambda: combo.view().isVisible(), timeout=5_000)
    view = combo.view()
    click_index(qtbot, view, find_row(view, text, combo.modelColumn()))
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=5_000)


# --- dialogs -----------------------------------------------------------------------
def wait_dialog(
    qtbot: QtBot,
    kind: type[W] = QDialog,
    timeout: int = WAIT_MS,
    where: Callable[[W], bool] = lambda _d: True,  # type: ignore[assignment]
) -> W:
    """The dialog of ``kind`` that appeared (visible, top level)."""
    found: list[W] = []

    def shown() -> bool:
        found[:] = [
            w
            for w in QApplication.topLevelWidgets()
            if isinstance(w, kind) and w.isVisible() and where(w)
        ]
        return bool(found)

    qtbot.waitUntil(shown, timeout=timeout)
    return found[-1]


def visible_dialogs(kind: type[W] = QDialog) -> list[W]:  # type: ignore[assignment]
    """The dialogs of ``kind`` on screen now."""
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()]


def dialog_button(dialog: QWidget, text: str) -> QAbstractButton:
    """A button of ``dialog`` by its text as shown."""
    buttons = [b for b in dialog.findChildren(QAbstractButton) if b.isVisible()]
    for button in buttons:
        if plain(button.text()) == text:
            return button
    raise AssertionError(
        f"{_name(dialog)} has no {text!r} button: {[plain(b.text()) for b in buttons]}"
    )


def click_dialog_button(qtbot: QtBot, dialog: QWidget, text: str) -> None:
    click_button(qtbot, dialog_button(dialog, text))


def standard_buttons(dialog: QWidget) -> list[str]:
    box = dialog.findChild(QDialogButtonBox)
    assert box is not None
    return [plain(b.text()) for b in box.buttons()]


def shown_text(widget: QWidget) -> str:
    """Every visible label's text in ``widget``, rich text reduced to plain words."""
    from PySide6.QtGui import QTextDocument
    from PySide6.QtWidgets import QLabel

    out = []
    for label in widget.findChildren(QLabel):
        if label.isVisibleTo(widget) and label.text():
            doc = QTextDocument()
            doc.setHtml(label.text())
            out.append(doc.toPlainText())
    return "\n".join(out)


def gone(qtbot: QtBot, widget: Any, timeout: int = WAIT_MS) -> None:
    """Wait until a dialog or menu has closed."""

    def closed() -> bool:
        try:
            return not widget.isVisible()
        except RuntimeError:  # already deleted
            return True

    qtbot.waitUntil(closed, timeout=timeout)


def model_rows(view: QAbstractItemView) -> int:
    """How many rows the view shows (top level)."""
    return view.model().rowCount()


def click_tab(qtbot: QtBot, tabs: Any, title: str) -> None:
    """Click the tab titled ``title`` of a QTabWidget."""
    bar = tabs.tabBar()
    for i in range(bar.count()):
        if plain(bar.tabText(i)) == title and bar.isTabVisible(i):
            click(qtbot, bar, bar.tabRect(i).center())
            qtbot.waitUntil(lambda n=i: tabs.currentIndex() == n, timeout=5_000)
            return
    raise AssertionError(f"no {title!r} tab: {[bar.tabText(i) for i in range(bar.count())]}")


def selected_texts(view: QAbstractItemView, column: int = 0) -> list[str]:
    """The texts of the rows shown selected (highlighted), top to bottom."""
    rows = sorted(
        {i.row() for i in view.selectionModel().selectedIndexes() if not i.parent().isValid()}
    )
    return [str(view.model().index(r, column).data()) for r in rows]


def click_header(qtbot: QtBot, view: Any, column: int) -> None:
    """Click a table's column header (sorts on it; again: the other way)."""
    header = view.horizontalHeader()
    assert not header.isSectionHidden(column), f"column {column} is hidden"
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    click(qtbot, header.viewport(), QPoint(x, header.height() // 2))


def click_menu_button_and_pick(qtbot: QtBot, button: QWidget, text: str) -> None:
    """Click a tool button that opens a menu and click ``text`` in it. Such a menu
    runs its own event loop until it closes, so the pick is made from inside it."""
    picked: list[bool] = []
    tries = [0]

    def pick_when_open() -> None:
        menu = QApplication.activePopupWidget()
        if not isinstance(menu, QMenu) or not menu.isVisible():
            tries[0] += 1
            if tries[0] < 500:
                QTimer.singleShot(10, pick_when_open)
            return
        pick(qtbot, menu, text)
        picked.append(True)

    QTimer.singleShot(0, pick_when_open)
    click(qtbot, button)
    qtbot.waitUntil(lambda: bool(picked), timeout=10_000)
