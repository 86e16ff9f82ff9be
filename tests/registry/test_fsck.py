"""fsck finds what is wrong between the metadata and the blob store, repairs what
it can, and exits 0 only when clean."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select, update

from app.registry import cli
from app.registry.blobstore import new_generation
from app.registry.db import schema as s
from app.registry.gc import fsck
from tests.support import oci
from tests.support.inprocess import Store

APP = "acme/web/app"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(tmp_path / "data", review_delay_ms=0, grace_ms=1000)
    base = oci.random_layer(2000, "fsck-base")
    st.push(APP, oci.image([base, oci.random_layer(1000, "fsck-a")], label="a"), "a")
    st.push("acme/api/b", oci.image([base], label="b"), "b")
    try:
        yield st
    finally:
        st.close()


def _fsck(store: Store, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["fsck", "--data", str(store.reg.data_dir), *args])
    return code, capsys.readouterr().out


def test_a_consistent_store_is_clean(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _fsck(store, "--verify-content", capsys=capsys)
    assert code == 0, out
    assert "fsck: clean (4 objects, 4 blob rows, 2 manifests checked)" in out


def test_orphans_are_listed_and_removed_with_repair(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    row = store.blob_row(oci.random_layer(2000, "fsck-base").digest)
    assert row is not None
    leaked = store.reg.store.object_path(row.workspace_id, row.digest, new_generation())
    leaked.write_bytes(b"bytes a crash left behind")
    lost = store.reg.store.object_path(row.workspace_id, "sha256:" + "ab" * 32, new_generation())
    lost.parent.mkdir(parents=True)
    lost.write_bytes(b"x" * 10)

    # Young orphans may be uploads committing right now: noted, not removed.
    code, out = _fsck(store, "--repair", capsys=capsys)
    assert code == 0, out
    assert out.count("note: young orphan") == 2
    assert leaked.exists()

    code, out = _fsck(store, "--orphan-min-age", "0", capsys=capsys)
    assert code == fsck.EXIT_PROBLEMS
    assert f"orphan: object {leaked} (25 bytes) has no blob row" in out
    assert f"orphan: object {lost} (10 bytes) has no blob row" in out

    code, out = _fsck(store, "--orphan-min-age", "0", "--repair", capsys=capsys)
    assert code == fsck.EXIT_REPAIRED
    assert out.count("(repaired)") == 2
    assert not leaked.exists()
    assert not lost.parent.exists()  # the empty digest directory went too
    assert store.has_object(row)
    assert _fsck(store, capsys=capsys)[0] == 0


def test_missing_and_corrupt_objects_are_reported(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    layer = oci.random_layer(1000, "fsck-a")
    row = store.blob_row(layer.digest)
    assert row is not None
    path = store.reg.store.object_path(row.workspace_id, row.digest, row.generation)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out = _fsck(store, capsys=capsys)
    assert code == 0, out  # same size: only hashing sees it
    code, out = _fsck(store, "--verify-content", "--repair", capsys=capsys)
    assert code == fsck.EXIT_PROBLEMS
    assert f"corrupt: object {path} hashes to sha256:" in out

    path.write_bytes(b"short")
    code, out = _fsck(store, capsys=capsys)
    assert f"corrupt: object {path} has 5 bytes, its blob row says {row.size}" in out

    path.unlink()
    code, out = _fsck(store, "--repair", capsys=capsys)
    assert code == fsck.EXIT_PROBLEMS
    assert f"missing: blob {row.digest} of workspace {row.workspace_id}" in out


def test_usage_drift_is_found_and_repaired(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    base = store.blob_row(oci.random_layer(2000, "fsck-base").digest)
    assert base is not None
    a = store.manifest_ids(APP)
    with store.reg.db.write() as conn:
        conn.execute(update(s.blobs).where(s.blobs.c.id == base.id).values(image_refs=7))
        conn.execute(delete(s.blob_usage).where(s.blob_usage.c.blob_id != base.id))
        conn.execute(update(s.blob_usage).values(refs=3))
        conn.execute(update(s.manifests).where(s.manifests.c.id.in_(a.values())).values(holders=0))
        conn.execute(update(s.images).values(tag_count=5))
    code, out = _fsck(store, capsys=capsys)
    assert code == fsck.EXIT_PROBLEMS
    assert f"usage: blob {base.id} image_refs is 7, should be 2" in out
    assert "blob_usage holds 1 (2 missing, 0 extra, 1 with wrong counts)" in out
    assert f"usage: manifest {next(iter(a.values()))} holders is 0, should be 1" in out
    assert "usage: image 1 tag_count is 5, it has 1 tags" in out
    code, out = _fsck(store, "--repair", capsys=capsys)
    assert code == fsck.EXIT_REPAIRED
    code, out = _fsck(store, capsys=capsys)
    assert code == 0, out
    # The repaired counters are the ones pushes and deletes go on from.
    store.delete_tag(APP, "a")
    store.delete_tag("acme/api/b", "b")
    assert _fsck(store, capsys=capsys)[0] == 0
    with store.reg.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(s.blob_usage)).scalar() == 0


def test_garbage_nobody_queued_is_found_and_queued(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    store.delete_tag(APP, "a")
    with store.reg.db.write() as conn:
        conn.execute(delete(s.gc_manifest_reviews))
    code, out = _fsck(store, capsys=capsys)
    assert code == fsck.EXIT_PROBLEMS
    assert "is kept by nothing but no GC review is queued" in out
    code, _ = _fsck(store, "--repair", capsys=capsys)
    assert code == fsck.EXIT_REPAIRED
    store.advance(store.grace)
    tally = store.gc()
    assert tally.manifests_deleted == 1
    assert fsck.FSCK_EVENT in tally.triggers
    assert _fsck(store, capsys=capsys)[0] == 0


def test_references_that_leave_their_workspace_are_reported(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = store.upload("globex/tools/t", oci.random_layer(300, "foreign"))
    with store.reg.db.write() as conn:
        conn.execute(
            update(s.manifest_layers)
            .where(s.manifest_layers.c.position == 1)
            .values(blob_id=theirs.id)
        )
        conn.execute(insert(s.image_blobs).values(image_id=1, blob_id=theirs.id, linked_at=0))
    code, out = _fsck(store, capsys=capsys)
    assert code == fsck.EXIT_PROBLEMS
    assert "dangling: layer not in the manifest's workspace" in out
    assert "dangling: image linked to a blob of another workspace: image 1" in out
    # The payload names a layer no row of its own workspace holds any more.
    assert "refers to sha256:" in out


def test_a_manifest_whose_bytes_changed_is_corrupt(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    with store.reg.db.write() as conn:
        conn.execute(update(s.manifests).where(s.manifests.c.id == 1).values(payload=b"{}"))
    code, out = _fsck(store, capsys=capsys)
    assert code == fsck.EXIT_PROBLEMS
    assert "payload digest differs" in out


def test_stray_entries_in_the_blob_store_are_reported(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    (store.reg.store.objects / "notes.txt").write_text("hello")
    code, out = _fsck(store, capsys=capsys)
    assert code == fsck.EXIT_PROBLEMS
    assert "stray: unexpected entry" in out
