"""The Cleanup policies tab as an admin uses it, by mouse and keyboard only, against a
real registry: rules typed into the editor, the preview read, rows dragged over and
kept this once, *Run now…* read and confirmed; then what the registry holds.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QMessageBox
from pytestqt.qtbot import QtBot

from app.ui.common.formatting import format_bytes
from app.ui.main_window import MainWindow
from app.ui.policies.confirm import ConfirmRunDialog
from app.ui.policies.models import ACTION, RULE, TAG
from app.ui.policies.view import PoliciesView
from tests.support import gui, oci
from tests.support.registry import RegistryServer
from tests.ui.conftest import WindowFactory
from tests.ui.seed import seed_image, server_tags

WAIT_MS = 30_000
NAME = "acme/web/frontend"
KEEP = ["keep-1", "keep-2"]
OLD = [f"old-{i:02d}" for i in range(10)]
POLICY = "/api/v1/workspaces/acme/repositories/web/policy"
SAVED = {"rules": [{"kind": "keep_regex", "value": "^keep-"},
                   {"kind": "remove_older_than", "value": 0}]}  # fmt: skip


def open_policies(qtbot: QtBot, window: MainWindow, path: list[str]) -> PoliciesView:
    """Click down the navigator to ``path``, then the Cleanup policies tab."""
    gui.open_tree_path(qtbot, window.navigator.tree, path)
    gui.click_tab(qtbot, window.views, "Cleanup policies")
    view = window.policies
    qtbot.waitUntil(lambda: view.title.text().endswith("/".join(p for p in path if p != "PLAT"))
                    or view.title.text().endswith(path[-1]), timeout=WAIT_MS)  # fmt: skip
    return view


def wait_preview(qtbot: QtBot, window: MainWindow, view: PoliciesView, go: int) -> None:
    """Until the preview says ``go`` tags go and its table has every row."""
    want = f"{go} tag go" if go == 1 else f"{go:,} tags go"

    def ready() -> bool:
        return (
            want in gui.shown_text(view.summary.parentWidget())
            and not window.ops.busy
            and view.tags_model.fully_loaded
        )

    qtbot.waitUntil(ready, timeout=WAIT_MS)


def choose(qtbot: QtBot, combo: QComboBox, text: str) -> None:
    """Open a combo box with a click, move to ``text`` with the arrow keys and press
    Enter. (Clicking the item in the popup, as ``gui.choose_in_combo`` does, meets a
    stale PySide wrapper of the popup's window here: "already deleted".)"""
    gui.click(qtbot, combo)
    qtbot.waitUntil(lambda: combo.view().isVisible(), timeout=5_000)
    view = combo.view()
    target = gui.find_row(view, text, combo.modelColumn()).row()
    window = combo.window()
    while view.currentIndex().row() != target:
        down = view.currentIndex().row() < target
        gui.key(qtbot, window, Qt.Key.Key_Down if down else Qt.Key.Key_Up)
    gui.key(qtbot, window, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=5_000)
    assert combo.currentText() == text


def column(view: PoliciesView, col: int) -> list[str]:
    return gui.texts(view.tags.view, col)


def shown_rows(view: PoliciesView) -> dict[str, tuple[str, str]]:
    """tag -> (Go/Stay, rule) as the preview table shows them."""
    return dict(
        zip(column(view, TAG), zip(column(view, ACTION), column(view, RULE), strict=True),
            strict=True)
    )  # fmt: skip


def api(server: RegistryServer, user: str = "root") -> httpx.Client:
    return server.client(user)


def test_typed_rules_preview_exceptions_and_run_delete_exactly_the_go_tags(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, KEEP + OLD, variants=len(KEEP + OLD))
    window = make_window(registry, "wsadmin")
    view = open_policies(qtbot, window, ["acme", "PLAT", "web"])
    editor = view.editor
    qtbot.waitUntil(lambda: "no cleanup policy" in editor.origin.text(), timeout=WAIT_MS)
    assert not view.run_button.isEnabled()

    # Two rules, typed: keep ^keep-, remove what was pushed more than 0 days ago.
    gui.click_button(qtbot, editor.add_button)
    choose(qtbot, editor.rows[0].kind, "Keep matching")
    gui.replace_text(qtbot, editor.rows[0].value, "^keep-")
    gui.click_button(qtbot, editor.add_button)
    choose(qtbot, editor.rows[1].kind, "Remove pushed over")
    gui.replace_text(qtbot, editor.rows[1].value, "0")
    wait_preview(qtbot, window, view, 10)
    summary = view.summary.text()
    assert "these rules (not saved)" in summary
    assert "2 tags stay, in 1 image" in summary
    rows = shown_rows(view)
    assert {t: rows[t] for t in KEEP} == {t: ("Stay", "keep-regex ^keep-") for t in KEEP}
    assert {t: rows[t] for t in OLD} == {t: ("Go", "remove-older-than 0") for t in OLD}
    assert gui.texts(view.images.view, 1) == ["10"]  # Go of the one image
    assert gui.texts(view.images.view, 2) == ["2"]
    chart = view.chart.figures
    assert chart["Freed"] == (view.preview.freed, 0)  # type: ignore[union-attr]

    # Drag over old-00 .. old-02 and keep them this once.
    tags_view = view.tags.view
    first = gui.find_row(tags_view, "old-00", TAG).row()
    gui.drag_rows(qtbot, tags_view, first, first + 2)
    assert gui.selected_texts(tags_view, TAG) == ["old-00", "old-01", "old-02"]
    gui.click_button(qtbot, view.keep_button)
    kept = ["old-00", "old-01", "old-02"]
    rows = shown_rows(view)
    assert [rows[t][0] for t in kept] == ["Stay (exception)"] * 3
    assert [rows[t][0] for t in OLD[3:]] == ["Go"] * 7
    assert view.exceptions_label.text() == "3 exceptions: kept this run only"

    # The confirmation states the registry's figures for the plan as it will run.
    gui.click_button(qtbot, view.run_button)
    dialog = gui.wait_dialog(qtbot, ConfirmRunDialog)
    text = gui.shown_text(dialog)
    assert "Run the cleanup policy of acme/web now?" in text
    assert "7 tags will be deleted. The preview planned 10; you keep 3 of them" in text
    assert "These rules are not saved" in text
    with api(registry) as c:
        ids = {i["name"]: i["id"] for i in c.get("/api/v1/workspaces/acme/images").json()["items"]}
        impact = c.post(
            "/api/v1/workspaces/acme/storage/delete-impact",
            json={"tags": [{"image_id": ids["frontend"], "tag": t} for t in OLD[3:]]},
        ).json()
    assert f"then {format_bytes(impact['freed'])} will be freed" in text
    assert impact["freed"] > 0
    gui.click_dialog_button(qtbot, dialog, "Run now")
    gui.gone(qtbot, dialog)

    # Exactly the Go tags went; the exceptions and the kept tags stay.
    qtbot.waitUntil(lambda: view.run_result.text().startswith("Deleted"), timeout=WAIT_MS)
    assert server_tags(registry, NAME) == set(KEEP + kept)
    assert "Deleted 7 of 7 planned tags" in view.run_result.text()
    qtbot.waitUntil(lambda: gui.model_rows(view.runs) == 1, timeout=WAIT_MS)
    assert gui.row_texts(view.runs, 0)[1:5] == ["acme/web", "run by wsadmin", "done", "7"]
    # The preview is made again: the kept three go next time, unless kept again.
    wait_preview(qtbot, window, view, 3)
    assert view.exceptions_label.isHidden()


def test_a_tag_pushed_again_after_the_preview_stays(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, KEEP + OLD[:4], variants=6)
    with api(registry) as c:
        assert c.put(POLICY, json=SAVED).status_code == 200
    window = make_window(registry, "admin")
    view = open_policies(qtbot, window, ["acme", "PLAT", "web"])
    wait_preview(qtbot, window, view, 4)
    assert "Preview of the saved policy" in view.summary.text()

    # Meanwhile someone pushes old-01 again, onto another image.
    other = oci.image([oci.random_layer(700, seed="re-pushed")], label="re-pushed")
    with api(registry) as c:
        assert oci.push(c, NAME, other, tag="old-01").status_code == 201

    gui.click_button(qtbot, view.run_button)
    dialog = gui.wait_dialog(qtbot, ConfirmRunDialog)
    assert "4 tags will be deleted" in gui.shown_text(dialog)
    assert "These rules are not saved" not in gui.shown_text(dialog)
    gui.click_dialog_button(qtbot, dialog, "Run now")
    qtbot.waitUntil(lambda: view.run_result.text().startswith("Deleted"), timeout=WAIT_MS)
    assert server_tags(registry, NAME) == {*KEEP, "old-01"}
    assert "1 left alone (pushed again since the preview)" in view.run_result.text()
    qtbot.waitUntil(lambda: gui.model_rows(view.runs) == 1, timeout=WAIT_MS)
    assert gui.row_texts(view.runs, 0)[4:6] == ["3", "1"]  # deleted, left alone
    with api(registry) as c:
        r = c.get(f"/v2/{NAME}/manifests/old-01", headers={"Accept": oci.OCI_MANIFEST})
        assert r.headers["Docker-Content-Digest"] == other.digest


def test_who_may_not_set_or_run_sees_why_and_still_the_saved_preview(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, KEEP + OLD[:3], variants=5)
    with api(registry) as c:
        assert c.put(POLICY, json=SAVED).status_code == 200
    window = make_window(registry, "reader")
    view = open_policies(qtbot, window, ["acme", "PLAT", "web"])
    wait_preview(qtbot, window, view, 3)
    assert "Preview of the saved policy" in view.summary.text()
    editor = view.editor
    assert [r.value.text() for r in editor.rows] == ["^keep-", "0"]
    need = "needs admin permission on acme/web; you have read permission there."
    assert not view.run_button.isEnabled()
    assert view.run_button.toolTip() == f"Running the cleanup policy {need}"
    for widget in (editor.add_button, editor.rows[0].value, editor.save_button,
                   editor.remove_button):  # fmt: skip
        assert not widget.isEnabled()
        assert widget.toolTip() == f"Changing the cleanup policy {need}"
    # Selecting rows is reading: allowed; keeping them this once is running: greyed.
    first = gui.find_row(view.tags.view, "old-00", TAG).row()
    gui.drag_rows(qtbot, view.tags.view, first, first + 1)
    assert not view.keep_button.isEnabled()
    assert view.keep_button.toolTip() == f"Running the cleanup policy {need}"
    # The context menu holds the same action (a right click here would open a menu
    # with a nested event loop on this branch's main; the action is what it shows).
    assert view.keep_action in view.tags.view.actions()
    assert not view.keep_action.isEnabled()
    assert view.keep_action.toolTip() == f"Running the cleanup policy {need}"

    # A repository admin on the workspace's own policy: not a workspace admin.
    other = make_window(registry, "admin")
    view = open_policies(qtbot, other, ["acme"])
    qtbot.waitUntil(lambda: "no cleanup policy" in view.editor.origin.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not other.ops.busy, timeout=WAIT_MS)
    assert not view.editor.add_button.isEnabled()
    assert view.editor.add_button.toolTip() == (
        "Changing the cleanup policy needs workspace admin in acme; you are a member there."
    )


def test_a_bad_rule_is_said_beside_the_rules_and_nothing_is_sent(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, KEEP, variants=2)
    window = make_window(registry, "wsadmin")
    view = open_policies(qtbot, window, ["acme", "PLAT", "web"])
    editor = view.editor
    qtbot.waitUntil(lambda: editor.add_button.isEnabled(), timeout=WAIT_MS)
    gui.click_button(qtbot, editor.add_button)
    choose(qtbot, editor.rows[0].kind, "Keep matching")
    gui.replace_text(qtbot, editor.rows[0].value, "(a+)+$")
    qtbot.waitUntil(lambda: editor.problem.isVisible(), timeout=WAIT_MS)
    assert editor.problem.text().startswith("Rule 1: keep_regex: '(a+)+$' repeats a group")
    assert view.summary.text() == "Fix the rules to see what they would remove."
    assert not editor.save_button.isEnabled()
    assert editor.save_button.toolTip() == "Fix the rules first"
    assert not view.run_button.isEnabled()
    assert view.run_button.toolTip() == "Fix the rules first"
    gui.replace_text(qtbot, editor.rows[1 - 1].value, "^v")
    qtbot.waitUntil(lambda: not editor.problem.isVisible(), timeout=WAIT_MS)
    gui.click_button(qtbot, editor.add_button)
    gui.replace_text(qtbot, editor.rows[1].value, "ten")
    qtbot.waitUntil(lambda: "Rule 2: Keep last pushed: a number of tags is needed, not 'ten'"
                    in editor.problem.text(), timeout=WAIT_MS)  # fmt: skip
    with api(registry) as c:
        assert c.get(POLICY).json()["rules"] == []


def test_save_then_remove_the_policy(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, KEEP + OLD[:2], variants=4)
    window = make_window(registry, "wsadmin")
    view = open_policies(qtbot, window, ["acme", "PLAT", "web"])
    editor = view.editor
    qtbot.waitUntil(lambda: editor.add_button.isEnabled(), timeout=WAIT_MS)
    gui.click_button(qtbot, editor.add_button)
    gui.replace_text(qtbot, editor.rows[0].value, "1")
    gui.click_button(qtbot, editor.add_button)
    choose(qtbot, editor.rows[1].kind, "Remove not pulled for")
    gui.replace_text(qtbot, editor.rows[1].value, "30")
    choose(qtbot, editor.schedule, "Every day")
    gui.click_button(qtbot, editor.save_button)
    qtbot.waitUntil(lambda: "saved by wsadmin" in editor.origin.text(), timeout=WAIT_MS)
    with api(registry) as c:
        saved = c.get(POLICY).json()
    assert saved["rules"] == [{"kind": "keep_last", "value": 1},
                              {"kind": "remove_not_pulled_for", "value": 30}]  # fmt: skip
    assert saved["interval"] == 86_400
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=WAIT_MS)
    assert not editor.save_button.isEnabled()
    assert editor.save_button.toolTip() == "Nothing changed since it was saved"

    gui.click_button(qtbot, editor.remove_button)
    box = gui.wait_dialog(qtbot, QMessageBox)
    assert "No tag is deleted by this" in box.informativeText()
    gui.click_dialog_button(qtbot, box, "Remove policy")
    qtbot.waitUntil(lambda: "no cleanup policy" in editor.origin.text(), timeout=WAIT_MS)
    with api(registry) as c:
        assert c.get(POLICY).json()["rules"] == []


def test_a_refusal_from_the_registry_is_shown_readably(
    registry: RegistryServer, make_window: WindowFactory, qtbot: QtBot
) -> None:
    seed_image(registry, NAME, KEEP, variants=2)
    window = make_window(registry, "admin")
    view = open_policies(qtbot, window, ["acme", "PLAT", "web"])
    editor = view.editor
    qtbot.waitUntil(lambda: editor.add_button.isEnabled(), timeout=WAIT_MS)
    gui.click_button(qtbot, editor.add_button)
    qtbot.waitUntil(lambda: editor.save_button.isEnabled(), timeout=WAIT_MS)
    registry.grant("acme/web", "admin", "read")  # taken away while the tab is open
    gui.click_button(qtbot, editor.save_button)
    qtbot.waitUntil(lambda: window.error_bar.isVisible(), timeout=WAIT_MS)
    text: Any = window.error_bar.text
    assert re.search(r"^Permission missing: admin on acme/web\. ", text), text
    with api(registry) as c:
        assert c.get(POLICY).json()["rules"] == []
