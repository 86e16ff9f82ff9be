"""The cost rule (DESIGN.md §2), counted rather than timed: a tag push, a tag move, a
tag delete (of a plain manifest, of an index, of a signed manifest) and the GC's
reviews of a manifest and of a blob do the same work in an image of 40 tags and of
1,000 -- with the manifest under review holding 20 or 500 of them, and the blob
under review shared by 20 or 500 manifests.

Work is SQLite's: the virtual machine instructions every statement of the operation
runs (a progress handler counts them), a measure the machine's load cannot blur.
An index lookup costs the same at any size; a walk over an image's tags, or over a
manifest's tags, does not. Timings are the benchmarks' business
(tests/benchmarks/bench_flat_cost.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from app.registry.gc import review as gc_review
from tests.support import oci
from tests.support.inprocess import Store

APP = "acme/web/app"
SMALL, LARGE = 20, 500  # tags per kind of holder, before and after growing


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(tmp_path / "data", review_delay_ms=0, grace_ms=0)
    try:
        yield st
    finally:
        st.close()


def _work(store: Store, action: Callable[[], object]) -> int:
    """SQLite VM instructions (in steps of 10) run by ``action``'s statements, rows
    fetched after a statement's execute included."""
    counted = [0]
    used: dict[int, Any] = {}

    def tick() -> int:
        counted[0] += 1
        return 0  # 0: carry on

    def hook(conn: Any, *_: object) -> None:
        dbapi = conn.connection.dbapi_connection
        if id(dbapi) not in used:
            used[id(dbapi)] = dbapi
            dbapi.set_progress_handler(tick, 10)

    engine = store.reg.db.engine
    event.listen(engine, "before_cursor_execute", hook)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", hook)
        for dbapi in used.values():  # pooled connections go back without it
            dbapi.set_progress_handler(None, 10)
    return counted[0]


class Image:
    """One image: a manifest many tags share, manifests sharing one layer, an index
    and a signed manifest, grown by ``fill``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.base = oci.random_layer(300, "cost-base")
        self.popular = oci.image([self.base], label="popular")
        self.tags = 0
        self.own = 0

    def fill(self, per_kind: int) -> None:
        while self.tags < per_kind:
            self.store.push(APP, self.popular, f"popular-{self.tags}")
            self.tags += 1
        while self.own < per_kind:
            self.store.push(APP, oci.image([self.base], label=f"own-{self.own}"), f"own-{self.own}")
            self.own += 1

    def operations(self, n: int) -> dict[str, Callable[[], object]]:
        """Each operation once, on fresh names so that every round does the same."""
        s, base = self.store, self.base
        index = oci.index([oci.image([base], label=f"child-{n}")])
        signed = oci.image([base], label=f"signed-{n}")
        sig = oci.image(
            [oci.random_layer(40, f"sig-{n}")], label=f"sig-{n}", subject=signed.manifest
        )
        fresh = oci.image([base], label=f"fresh-{n}")
        for blob in [*fresh.blobs, *index.all_blobs(), *signed.blobs, *sig.blobs]:
            s.head(APP, blob.digest) or s.upload(APP, blob)
        for child in index.children:
            s.put_manifest(APP, child)
        s.put_manifest(APP, signed, f"signed-{n}")
        s.put_manifest(APP, sig)
        s.put_manifest(APP, index, f"multi-{n}")
        ids = s.manifest_ids(APP)
        blob = s.blob_row(base.digest)
        assert blob is not None

        def review(fn: Callable[..., set[int]], ids: list[int]) -> Callable[[], object]:
            def run() -> object:
                with s.reg.db.write() as conn:
                    return fn(conn, ids)

            return run

        return {
            "push a new tag": lambda: s.put_manifest(APP, fresh, f"fresh-{n}"),
            "move a tag": lambda: s.put_manifest(APP, self.popular, f"fresh-{n}"),
            "delete a tag": lambda: s.delete_tag(APP, f"fresh-{n}"),
            "delete an index's tag": lambda: s.delete_tag(APP, f"multi-{n}"),
            "delete a signed manifest's tag": lambda: s.delete_tag(APP, f"signed-{n}"),
            "review a manifest with many tags": review(
                gc_review.manifests_in_use, [ids[self.popular.digest]]
            ),
            "review a blob many manifests share": review(gc_review.blobs_in_use, [blob.id]),
        }


def test_work_does_not_grow_with_the_image(store: Store) -> None:
    image = Image(store)
    image.fill(SMALL)
    small = {name: _work(store, op) for name, op in image.operations(1).items()}
    image.fill(LARGE)
    large = {name: _work(store, op) for name, op in image.operations(2).items()}
    for name in small:
        # B-tree seeks deepen a level or so; a walk would be 25 times the work.
        assert large[name] <= small[name] * 1.3 + 20, (name, small[name], large[name])
