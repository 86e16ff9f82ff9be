"""The trash table model: checked by pytest-qt's model tester, and its rows' texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from PySide6.QtCore import QPersistentModelIndex, Qt

from app.client.trash import TrashEntry
from app.core.units import format_bytes
from app.ui.trash.model import CHANGE, HOW, SIZE, WHAT, SortRole, TrashModel

WHEN = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)


def entry(i: int, **kw: object) -> TrashEntry:
    fields: dict[str, object] = {
        "id": i,
        "kind": "tag",
        "image_id": 7,
        "image": "acme/web/frontend",
        "repository": "web",
        "tag": f"v{i}",
        "digest": "sha256:" + f"{i:x}" * 64,
        "replaced_by": None,
        "size": 1000 * i,
        "tag_count": 1,
        "action": "tag.delete",
        "deleted_by": "root",
        "deleted_at": WHEN,
        "expires_at": WHEN + timedelta(days=7),
    }
    fields.update(kw)
    return TrashEntry(**fields)  # type: ignore[arg-type]


def test_the_model_passes_the_model_tester_and_says_what_each_entry_is(
    qtmodeltester: Any,
) -> None:
    model = TrashModel()
    model.set_rows(
        [
            entry(1),
            entry(2, action="tag.move", replaced_by="sha256:" + "e" * 64),
            entry(3, kind="image", tag=None, tag_count=4, action="image.delete"),
        ]
    )
    qtmodeltester.check(model)
    text = [[model.index(r, c).data() for c in (WHAT, CHANGE, HOW)] for r in range(3)]
    assert text[0][0] == "acme/web/frontend:v1"
    assert text[0][1].startswith("v1 → sha256:")
    assert text[1][1].startswith("v2 → sha256:")
    assert "(now sha256:eee" in text[1][1]
    assert text[1][2] == "moved by a push"
    assert text[2][0] == "acme/web/frontend (image, 4 tags)"
    assert model.index(2, SIZE).data(SortRole) == 3000
    assert model.index(0, SIZE).data(Qt.ItemDataRole.DisplayRole) == format_bytes(1000)
    model.remove_ids({2})
    assert [model.index(r, WHAT).data() for r in range(model.rowCount())] == [
        "acme/web/frontend:v1",
        "acme/web/frontend (image, 4 tags)",
    ]
    qtmodeltester.check(model)


def test_merging_the_server_rows_keeps_the_rows_still_there_in_place(qtmodeltester: Any) -> None:
    model = TrashModel()
    model.set_rows([entry(3), entry(2), entry(1)])
    qtmodeltester.check(model)
    kept = model.index(1, WHAT)  # entry 2: a row the user may have selected
    persistent = QPersistentModelIndex(kept)
    resets: list[bool] = []
    model.modelReset.connect(lambda: resets.append(True))
    # 5 and 4 deleted since (newest first), 3 restored, 1 held a moment longer.
    model.merge([entry(5), entry(4), entry(2), entry(1, size=1)])
    assert [model.index(r, WHAT).data() for r in range(model.rowCount())] == [
        "acme/web/frontend:v5",
        "acme/web/frontend:v4",
        "acme/web/frontend:v2",
        "acme/web/frontend:v1",
    ]
    assert not resets  # rows moved and changed in place, not a reset
    assert persistent.isValid()
    assert persistent.row() == 2
    assert model.index(3, SIZE).data(SortRole) == 1
    assert model.index(1, WHAT).data() == "acme/web/frontend:v4"
    model.merge([entry(1), entry(2)])  # the order changed: shown as the server says
    assert [model.index(r, WHAT).data() for r in range(model.rowCount())] == [
        "acme/web/frontend:v1",
        "acme/web/frontend:v2",
    ]
    qtmodeltester.check(model)
    single = entry(9, kind="image", tag=None, tag_count=1, action="image.delete")
    model.merge([single])
    assert model.index(0, WHAT).data() == "acme/web/frontend (image, 1 tag)"
