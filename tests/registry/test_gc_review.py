"""The GC's review logic, in-process with a hand-moved clock: what is deleted, what
is kept, and when."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, select, update

from app.registry.db import engine
from app.registry.db import schema as s
from app.registry.gc import collector as gc
from app.registry.gc import review as gc_review
from app.registry.gc import reviews, storage
from tests.support import oci
from tests.support.inprocess import Store

GRACE = 10_000
DELAY = 5_000
APP = "acme/web/app"
OTHER = "acme/api/other"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(tmp_path / "data", review_delay_ms=DELAY, grace_ms=GRACE)
    try:
        yield st
    finally:
        st.close()


def _layers(prefix: str, n: int, size: int = 3000) -> list[oci.Blob]:
    return [oci.random_layer(size, f"{prefix}{i}") for i in range(n)]


def _after_grace(store: Store) -> None:
    store.advance(GRACE + DELAY + 1)


def _pending(store: Store, workspace: str = "acme") -> int:
    with store.reg.db.read() as conn:
        return storage.totals(conn, store.workspace_id(workspace)).pending


def test_tag_delete_frees_exclusive_blobs_after_the_delay_and_keeps_shared(store: Store) -> None:
    base = _layers("base", 2)
    mine = _layers("mine", 2)
    a = oci.image([*base, *mine], label="a")
    b = oci.image(base, label="b")
    store.push(APP, a, "v1")
    store.push(OTHER, b, "v1")
    _after_grace(store)
    assert store.gc().reviewed > 0  # the uploads' own reviews: all referenced, kept
    exclusive = sum(x.size for x in [a.blobs[0], *mine])  # a's config and own layers
    rows = {x.digest: store.blob_row(x.digest) for x in [*a.blobs, *b.blobs]}

    store.delete_tag(APP, "v1")
    assert _pending(store) == exclusive
    store.advance(DELAY - 1)
    early = store.gc()
    assert early.reviewed == 0
    assert store.manifest_ids(APP)

    store.advance(1)
    tally = store.gc()
    assert tally.manifests_deleted == 1
    assert tally.blobs_deleted == 3
    assert tally.bytes_freed == exclusive
    assert tally.triggers == {reviews.TAG_DELETE}
    assert _pending(store) == 0
    for blob in [a.blobs[0], *mine]:
        row = rows[blob.digest]
        assert row is not None
        assert not store.has_object(row)
        assert store.blob_row(blob.digest) is None
    for blob in b.blobs:
        row = rows[blob.digest]
        assert row is not None
        assert store.has_object(row)
    assert store.queued() == ({}, {})


def test_nothing_is_reviewed_before_the_delay_but_ignore_delay_still_honours_the_grace(
    store: Store,
) -> None:
    img = oci.image(_layers("x", 1))
    store.push(APP, img, "v1")
    store.delete_tag(APP, "v1")
    # Reviewed at once when ignoring the delay, but everything is within the grace.
    tally = store.gc(ignore_delay=True)
    assert tally.deferred == 1  # the manifest; its blobs are still referenced by it
    assert tally.manifests_deleted == tally.blobs_deleted == 0
    assert store.manifest_ids(APP)
    m_queue, _ = store.queued()
    assert list(m_queue.values()) == [store.now + GRACE]
    store.advance(GRACE)
    tally = store.gc()
    assert tally.manifests_deleted == 1
    assert tally.blobs_deleted == 2


def test_repush_of_a_tag_reviews_the_old_manifest(store: Store) -> None:
    shared = _layers("s", 1)
    old = oci.image([*shared, *_layers("old", 1)], label="old")
    new = oci.image([*shared, *_layers("new", 1)], label="new")
    store.push(APP, old, "latest")
    store.push(APP, new, "latest")
    _after_grace(store)
    tally = store.gc()
    assert tally.triggers >= {reviews.TAG_REPUSH}
    assert tally.manifests_deleted == 1
    assert set(store.manifest_ids(APP)) == {new.digest}
    assert store.blob_row(old.blobs[0].digest) is None  # old's config
    assert store.blob_row(old.blobs[2].digest) is None  # and own layer
    assert store.blob_row(shared[0].digest) is not None


def test_referrer_is_kept_while_its_subject_lives(store: Store) -> None:
    subject = oci.image(_layers("subj", 1))
    store.push(APP, subject, "v1")
    sig_layer = oci.random_layer(500, "sig")
    referrer = oci.image(
        [sig_layer], subject=subject.manifest, artifact_type="application/vnd.example.sig"
    )
    store.push(APP, referrer)  # by digest: queued for review
    _after_grace(store)
    tally = store.gc()
    assert tally.manifests_deleted == 0
    assert referrer.digest in store.manifest_ids(APP)
    assert store.blob_row(sig_layer.digest) is not None

    store.delete_tag(APP, "v1")
    store.advance(DELAY)
    tally = store.gc()
    # The subject goes, which queues its referrer, which goes in the same pass.
    assert tally.manifests_deleted == 2
    assert store.manifest_ids(APP) == {}
    assert store.blob_row(sig_layer.digest) is None
    assert store.count(s.blobs) == 0


def test_referrer_pushed_before_its_subject_is_kept_once_the_subject_arrives(
    store: Store,
) -> None:
    subject = oci.image(_layers("late", 1))
    referrer = oci.image([oci.random_layer(400, "sbom")], subject=subject.manifest)
    store.push(APP, referrer)
    store.advance(GRACE - 1)
    store.push(APP, subject, "v1")
    store.advance(DELAY + 2)
    tally = store.gc()
    assert tally.manifests_deleted == 0
    assert set(store.manifest_ids(APP)) == {subject.digest, referrer.digest}


def test_index_children_are_kept_while_the_index_lives(store: Store) -> None:
    shared = _layers("multi", 1)
    amd = oci.image([*shared, *_layers("amd", 1)], arch="amd64")
    arm = oci.image([*shared, *_layers("arm", 1)], arch="arm64")
    idx = oci.index([amd, arm])
    store.push(APP, idx, "v1")  # children by digest (queued), then the index by tag
    _after_grace(store)
    tally = store.gc()
    assert tally.manifests_deleted == 0
    assert len(store.manifest_ids(APP)) == 3

    store.delete_tag(APP, "v1")
    store.advance(DELAY)
    tally = store.gc()
    assert tally.manifests_deleted == 3
    assert tally.blobs_deleted == 5  # two configs, two own layers, one shared layer
    assert store.count(s.blobs) == 0
    assert store.count(s.manifests) == 0


def test_child_of_a_live_index_survives_its_own_tag_delete(store: Store) -> None:
    child = oci.image(_layers("c", 1))
    idx = oci.index([child])
    store.push(APP, child, "child")
    store.push(APP, idx, "index")
    store.delete_tag(APP, "child")
    _after_grace(store)
    store.gc()
    assert set(store.manifest_ids(APP)) == {child.digest, idx.digest}


def test_blob_touched_within_the_grace_is_skipped_and_requeued(store: Store) -> None:
    layer = oci.random_layer(2000, "slow")
    old = oci.image([layer], label="old")
    store.push(APP, old, "v1")
    _after_grace(store)
    store.gc()
    store.delete_tag(APP, "v1")
    store.advance(DELAY)
    # A slow push checks the layer just before the GC reviews it ...
    assert store.head(OTHER, layer.digest) is False  # not linked to that image yet
    assert store.head(APP, layer.digest) is True
    touched = store.now
    store.advance(1)
    tally = store.gc()
    assert tally.manifests_deleted == 1
    assert tally.blobs_deleted == 1  # the config; the layer was touched
    row = store.blob_row(layer.digest)
    assert row is not None
    assert store.has_object(row)
    _, blob_queue = store.queued()
    assert blob_queue == {row.id: touched + GRACE}
    # ... and pushes its manifest within the grace: the layer is referenced again.
    store.advance(GRACE - 2)
    new = oci.image([layer], label="new")
    store.push(APP, new, "v2")
    store.advance(2)
    tally = store.gc()
    assert tally.blobs_deleted == 0
    assert row.id not in store.queued()[1]
    row = store.blob_row(layer.digest)
    assert row is not None
    assert store.has_object(row)


def test_an_unreferenced_upload_is_collected_when_its_grace_ends(store: Store) -> None:
    blob = oci.random_layer(1500, "abandoned")
    row = store.upload(APP, blob)
    store.advance(GRACE - 1)
    assert store.gc().reviewed == 0  # queued for the end of the grace
    store.head(APP, blob.digest)  # checked again: the grace starts over
    store.advance(1)
    tally = store.gc()
    assert tally.deferred == 1
    assert tally.blobs_deleted == 0
    store.advance(GRACE)
    tally = store.gc()
    assert tally.blobs_deleted == 1
    assert tally.bytes_freed == blob.size
    assert tally.triggers == {reviews.BLOB_UPLOAD}
    assert not store.has_object(row)
    # The image is left with no manifests, links or sessions: its row goes too.
    assert tally.images_removed == 1
    assert store.find_image(APP) is None


def test_manifest_fetched_within_the_grace_is_kept(store: Store) -> None:
    img = oci.image(_layers("fetched", 1))
    store.push(APP, img, "v1")
    store.advance(GRACE)
    store.get_manifest(APP, "v1")  # a pull begins
    store.delete_tag(APP, "v1")
    store.advance(DELAY)
    tally = store.gc()
    assert tally.deferred == 1
    assert tally.manifests_deleted == 0
    # The puller can still fetch its blobs: nothing the manifest references went.
    for blob in img.blobs:
        assert store.blob_row(blob.digest) is not None
    store.advance(GRACE)
    assert store.gc().manifests_deleted == 1


def test_blob_reuploaded_after_gc_gets_a_new_generation(store: Store) -> None:
    layer = oci.random_layer(2500, "again")
    first = store.upload(APP, layer)
    _after_grace(store)
    assert store.gc().blobs_deleted == 1
    assert not store.has_object(first)
    second = store.upload(APP, layer)
    assert second.generation != first.generation
    assert store.has_object(second)
    store.push(APP, oci.image([layer]), "v1")
    assert store.blob_row(layer.digest) == second


def test_deleting_the_old_generation_after_commit_never_hits_a_reupload(store: Store) -> None:
    """The window between the GC's commit and its object delete: a re-upload of the
    same digest meanwhile keeps its bytes."""
    layer = oci.random_layer(2500, "window")
    old = store.upload(APP, layer)
    _after_grace(store)
    with store.reg.db.write() as conn:
        batch = gc_review.review_blobs(conn, [old.id], store.now, GRACE)
    assert batch.reviewed == [(old.id, reviews.BLOB_UPLOAD, gc_review.Outcome.DELETED)]
    (freed,) = batch.freed
    new = store.upload(APP, layer)  # between the commit and the object delete
    assert store.reg.store.delete_object(freed.workspace_id, freed.digest, freed.generation)
    assert store.has_object(new)
    assert not store.has_object(old)
    store.push(APP, oci.image([layer]), "v1")


def test_image_delete_queues_every_blob_and_gc_frees_only_the_exclusive_ones(
    store: Store,
) -> None:
    base = _layers("img-base", 1)
    one = oci.image([*base, *_layers("one", 1)], label="one")
    two = oci.image([*base, *_layers("two", 1)], label="two")
    keep = oci.image(base, label="keep")
    store.push(APP, one, "1")
    store.push(APP, two, "2")
    store.push(OTHER, keep, "k")
    _after_grace(store)
    store.gc()  # the uploads' own reviews
    store.delete_image(APP)
    assert store.manifest_ids(APP) == {}  # manifests go with the image, at once
    exclusive = sum(b.size for b in [*one.blobs, *two.blobs] if b not in base)
    assert _pending(store) == exclusive
    _after_grace(store)
    tally = store.gc()
    assert tally.bytes_freed == exclusive
    assert tally.triggers == {reviews.IMAGE_DELETE}
    assert store.blob_row(base[0].digest) is not None
    assert _pending(store) == 0


def test_workspaces_never_share_blobs(store: Store) -> None:
    layer = oci.random_layer(1000, "both")
    store.push(APP, oci.image([layer]), "v1")
    store.push("globex/tools/t", oci.image([layer]), "v1")
    store.delete_tag(APP, "v1")
    _after_grace(store)
    store.gc("acme")
    store.gc("globex")
    assert store.blob_row(layer.digest, "acme") is None
    theirs = store.blob_row(layer.digest, "globex")
    assert theirs is not None
    assert store.has_object(theirs)


def test_a_failing_review_backs_off_alone_and_is_retried(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = store.upload(APP, oci.random_layer(800, "fine"))
    bad = store.upload(APP, oci.random_layer(800, "flaky"))
    _after_grace(store)
    real = gc_review.review_blobs

    def flaky(conn: Connection, ids: list[int], *args: object, **kw: bool) -> gc_review.Batch:
        if bad.id in ids:
            raise RuntimeError("disk on fire")
        return real(conn, ids, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(gc, "review_blobs", flaky)
    tally = store.gc()
    # The batch failed, so each item was tried alone: one deleted, one backed off.
    assert tally.failed == 1
    assert tally.blobs_deleted == 1
    assert not store.has_object(good)
    with store.reg.db.read() as conn:
        attempts, after = conn.execute(
            select(s.gc_blob_reviews.c.attempts, s.gc_blob_reviews.c.review_after).where(
                s.gc_blob_reviews.c.blob_id == bad.id
            )
        ).one()
    assert attempts == 1
    assert after == store.now + gc.BACKOFF_BASE_MS
    monkeypatch.undo()
    assert store.gc().reviewed == 0  # backed off
    store.advance(gc.BACKOFF_BASE_MS)
    assert store.gc().blobs_deleted == 1
    assert not store.has_object(bad)


def test_an_index_and_its_children_due_in_one_batch_all_go(store: Store) -> None:
    """The children are kept (their parent still exists when the batch checks) and
    leave the queue; the index's deletion queues them again, in the same pass."""
    amd = oci.image(_layers("batch-amd", 1), arch="amd64")
    arm = oci.image(_layers("batch-arm", 1), arch="arm64")
    store.push(APP, oci.index([amd, arm]), "multi")
    store.delete_tag(APP, "multi")
    _after_grace(store)
    tally = store.gc()
    assert tally.manifests_deleted == 3
    assert tally.blobs_deleted == 4
    assert store.queued() == ({}, {})


def test_a_subject_and_its_referrer_due_in_one_batch_both_go(store: Store) -> None:
    subject = oci.image(_layers("batch-subject", 1))
    store.push(APP, subject, "v1")
    store.push(APP, oci.image([oci.random_layer(300, "batch-sig")], subject=subject.manifest))
    store.delete_tag(APP, "v1")
    _after_grace(store)
    tally = store.gc()
    assert tally.manifests_deleted == 2
    assert store.count(s.manifests) == 0
    assert store.count(s.blobs) == 0


def test_a_locked_database_leaves_items_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "LOCK_TIMEOUT_S", 0.2)
    store = Store(tmp_path / "locked", grace_ms=GRACE)
    blocker = engine.Database(store.reg.db.url)
    try:
        store.upload(APP, oci.random_layer(800, "locked"))
        _after_grace(store)
        # Another writer holds the SQLite write lock past the lock timeout.
        with blocker.write() as conn:
            conn.execute(update(s.settings).where(s.settings.c.key == "none").values(value=""))
            tally = store.gc()
        assert tally.reviewed == 0
        assert tally.failed == 0
        assert len(store.queued()[1]) == 1
        assert store.gc().blobs_deleted == 1
    finally:
        blocker.dispose()
        store.close()
