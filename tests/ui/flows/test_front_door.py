"""The flow tests go through the front door: a test here may arrange the registry
(seed it over HTTP), start the app and read what the window shows, but it makes
things happen only with the helpers of ``tests/support/gui.py`` (mouse and keys
into the window) or ``qtbot``'s input events. This checks their source for calls
that would make a flow happen behind the user's back."""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).parent
# Calls that select, trigger, type or navigate without input events, and the
# window's own entry points for what a user does.
FORBIDDEN = frozenset(
    {
        "setCurrentIndex", "setCurrentRow", "setCurrentWidget", "setCurrentText",
        "select", "select_keys", "select_path", "selectAll", "selectRow",
        "clearSelection", "clear_selection", "setSelection",
        "trigger", "click", "animateClick", "toggle", "setChecked", "setText",
        "setPlainText", "insert", "setValue", "setFocus", "activate",
        "sortByColumn", "sort", "expand", "expandAll", "collapse", "scrollTo",
        "accept", "reject", "done", "open", "exec", "popup", "emit",
        "open_profile", "connect_to", "use_embedded", "refresh", "reveal",
        "delete_tags", "delete_image", "delete_selected_tags", "delete_current_image",
        "run_gc", "start_scan", "cancel_scan", "manage_connections", "copy_pull_command",
        "copy_digest", "focus_filter", "set_filter", "set_query", "set_scope",
        "set_source", "reload", "show_tag_details", "update_actions",
        "sendEvent", "postEvent",
    }
)  # fmt: skip


def offending_calls(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        receiver = node.func.value
        if isinstance(receiver, ast.Name) and receiver.id in {"gui", "qtbot", "c", "client"}:
            continue  # input helpers, qtbot's waits and events, HTTP clients
        name = node.func.attr
        if name in FORBIDDEN or (name.startswith("_") and not name.startswith("__")):
            found.append(f"line {node.lineno}: .{name}(...)")
    return found


def test_flow_tests_use_only_input_events() -> None:
    modules = sorted(p for p in HERE.glob("test_*.py") if p.name != Path(__file__).name)
    assert modules
    problems = {p.name: offending_calls(p.read_text()) for p in modules}
    assert {name: calls for name, calls in problems.items() if calls} == {}


def test_the_check_catches_a_flow_made_by_a_call() -> None:
    bad = "window.browse.images.select_keys([1]); window.acts.delete_tags.trigger()\n"
    bad += "view.setCurrentIndex(i); window._image_changed(None); gui.click_row(qtbot, v, 0)\n"
    assert offending_calls(bad) == [
        "line 1: .select_keys(...)",
        "line 1: .trigger(...)",
        "line 2: .setCurrentIndex(...)",
        "line 2: ._image_changed(...)",
    ]
