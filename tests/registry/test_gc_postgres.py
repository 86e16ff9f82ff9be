"""The GC on PostgreSQL, the metadata store of several nodes: the same reviews, GC
passes that share the work through ``SKIP LOCKED``, and pushes racing the GC
under real row locks (no grace to hide behind) without a dangling reference."""

from __future__ import annotations

import functools
import itertools
import random
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.registry import content
from app.registry.db.engine import Busy
from app.registry.errors import Conflict, ManifestBlobUnknown, ManifestUnknown
from app.registry.gc import collector as gc
from app.registry.gc import fsck, storage
from tests.support import oci
from tests.support.inprocess import Store
from tests.support.postgres import PostgresServer

APP = "acme/web/app"
_names = itertools.count()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


def _store(postgres: PostgresServer, tmp_path: Path, grace_ms: int) -> Store:
    url = postgres.create_database(f"gc{next(_names)}")
    return Store(tmp_path / "data", review_delay_ms=0, grace_ms=grace_ms, database_url=url)


def _clean(store: Store) -> None:
    report = fsck.check(store.reg, verify_content=True, orphan_min_age_ms=0)
    assert report.clean, report.lines()


def test_reviews_on_postgres(postgres: PostgresServer, tmp_path: Path) -> None:
    store = _store(postgres, tmp_path, grace_ms=1_000)
    try:
        base = oci.random_layer(2_000, "pg-base")
        amd = oci.image([base, oci.random_layer(1_000, "pg-amd")], arch="amd64")
        arm = oci.image([base, oci.random_layer(1_000, "pg-arm")], arch="arm64")
        store.push(APP, oci.index([amd, arm]), "multi")
        subject = oci.image([base, oci.random_layer(1_000, "pg-subject")], label="s")
        store.push(APP, subject, "v1")
        store.push(APP, oci.image([oci.random_layer(300, "pg-sig")], subject=subject.manifest))
        keep = oci.image([base], label="keep")
        store.push("acme/api/keep", keep, "v1")
        store.advance(store.grace)
        assert store.gc().manifests_deleted == 0  # children and referrer are kept
        store.delete_tag(APP, "multi")
        store.delete_tag(APP, "v1")
        with store.reg.db.read() as conn:
            pending = storage.totals(conn, store.workspace_id()).pending
        tally = store.gc()
        assert tally.manifests_deleted == 5
        assert tally.bytes_freed == pending
        assert store.blob_row(base.digest) is not None
        _clean(store)
    finally:
        store.close()


def test_concurrent_passes_share_the_work(postgres: PostgresServer, tmp_path: Path) -> None:
    store = _store(postgres, tmp_path, grace_ms=0)
    try:
        images = [
            oci.image([oci.random_layer(200, f"pg-many-{i}")], label=str(i)) for i in range(60)
        ]
        for i, img in enumerate(images):
            store.push(APP, img, f"t{i}")
        for i in range(len(images)):
            store.delete_tag(APP, f"t{i}")
        ws = store.workspace_id()
        tallies: list[gc.Tally] = []
        lock = threading.Lock()

        def one_pass() -> None:
            tally = gc.review_workspace(store.reg, ws, clock=store.clock)
            with lock:
                tallies.append(tally)

        threads = [threading.Thread(target=one_pass) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        tallies.append(store.gc())  # whatever one pass skipped while another held it
        assert sum(t.failed for t in tallies) == 0
        assert sum(t.manifests_deleted for t in tallies) == 60
        assert sum(t.blobs_deleted for t in tallies) == 120  # each item exactly once
        assert sum(t.bytes_freed for t in tallies) == sum(b.size for i in images for b in i.blobs)
        _clean(store)
    finally:
        store.close()


def test_manifests_racing_the_gc_never_leave_a_dangling_reference(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Only the row locks decide: a manifest put references a shared layer that no
    grace protects (uploaded long ago, not checked with HEAD) while GC passes run
    back to back. Either the manifest commits first (the GC then keeps the layer)
    or the GC's delete does (the put fails cleanly); the GC never trips over a
    reference it did not see, and no reference is left dangling."""
    store = _store(postgres, tmp_path, grace_ms=1_000)
    now, old = store.now, store.now - 10_000
    shared = oci.random_layer(3_000, "pg-race-shared")
    ws = store.workspace_id()
    outcomes = {"pushed": 0, "lost the layer to the GC": 0, "busy": 0}
    tallies: list[gc.Tally] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def push(img: oci.Image) -> None:
        config, own, _shared = img.blobs
        store.now = now  # its own blobs are fresh: the grace keeps them
        store.upload(APP, config)
        store.upload(APP, own)
        store.now = old  # the shared layer and the manifest are not
        for _attempt in range(100):
            try:
                store.put_manifest(APP, img, "racing")
                outcomes["pushed"] += 1
                return
            except ManifestBlobUnknown as exc:
                if exc.detail != {"digest": shared.digest}:
                    raise  # its own blobs are in their grace: losing them is a bug
                outcomes["lost the layer to the GC"] += 1
                store.upload(APP, shared)
            except Busy:
                outcomes["busy"] += 1
        raise AssertionError("the GC won 100 races in a row")

    def pusher() -> None:
        try:
            store.now = old
            store.upload(APP, shared)
            for i in range(60):
                push(oci.image([oci.random_layer(100, f"pg-race-{i}"), shared], label=str(i)))
                # Nothing references the shared layer once this goes: the GC may take it.
                store.delete_tag(APP, "racing")
        except BaseException as exc:
            errors.append(exc)
            traceback.print_exc()
        finally:
            done.set()

    def collector() -> None:
        while not done.is_set():
            tallies.append(gc.review_workspace(store.reg, ws, ignore_delay=True, clock=lambda: now))

    try:
        threads = [threading.Thread(target=pusher), threading.Thread(target=collector)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        store.now = now + 10_000  # every grace over: collect everything left
        tallies.append(store.gc(ignore_delay=True))
        assert sum(t.failed for t in tallies) == 0
        assert outcomes["pushed"] == 60
        _clean(store)
        collected = sum(t.blobs_deleted for t in tallies)
        print(f"\nmanifests racing the GC on PostgreSQL: {outcomes}, {collected} blobs collected")
    finally:
        store.close()


def test_reference_counts_stay_exact_under_concurrent_writers(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Tags pushed, moved and deleted on shared manifests, an index over them,
    subjects and their referrers deleted by digest and pushed again in either order,
    all from several threads at once under PostgreSQL's row locks: the counters kept
    incrementally equal a full recomputation afterwards (fsck's usage check), and a
    lock wait is at worst Busy (503), never a wrong count."""
    store = _store(postgres, tmp_path, grace_ms=3_600_000)
    base = oci.random_layer(1_000, "pg-count-base")
    plain = [
        oci.image([base, oci.random_layer(200, f"pg-count-{i}")], label=str(i)) for i in range(4)
    ]
    subjects = [oci.image([base], label=f"subject{i}") for i in range(2)]
    sigs = [
        oci.image([oci.random_layer(50, f"pg-count-sig{i}")], label=f"sig{i}", subject=s.manifest)
        for i, s in enumerate(subjects)
    ]
    index = oci.index(plain[:2])
    pool = [*plain, *subjects, *sigs, index]
    for img in pool:
        for blob in img.blobs:
            store.upload(APP, blob)
    for img in plain[:2]:
        store.put_manifest(APP, img)
    tags = [f"t{i}" for i in range(5)]
    done: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def attempt(what: str, fn: Callable[[], object]) -> None:
        for _ in range(50):
            try:
                fn()
                outcome = what
            except (Conflict, ManifestUnknown, ManifestBlobUnknown):
                outcome = f"{what}: refused"  # a parent holds it, gone, or a child gone
            except Busy:
                with lock:
                    done["busy, retried"] += 1
                continue
            with lock:
                done[outcome] += 1
            return
        raise AssertionError(f"{what}: busy 50 times")

    def delete_tag(tag: str) -> None:
        with store.reg.db.write() as conn:
            content.delete_tags(
                conn, store.image(conn, APP), [tag], store.reg.timing, store.now, "t"
            )

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(60):
                img, tag = rng.choice(pool), rng.choice([None, *tags])
                op = rng.random()
                if op < 0.55:
                    attempt("push", functools.partial(store.put_manifest, APP, img, tag))
                elif op < 0.75 and tag is not None:
                    attempt("tag delete", functools.partial(delete_tag, tag))
                else:
                    attempt(
                        "delete by digest",
                        functools.partial(store.delete_manifest, APP, img.digest),
                    )
        except BaseException as exc:
            errors.append(exc)
            traceback.print_exc()

    def subject_churn(i: int) -> None:
        """A subject tagged and untagged over and over: it lives and dies."""
        try:
            for _ in range(80):
                attempt("push", functools.partial(store.put_manifest, APP, subjects[i], f"s{i}"))
                attempt("tag delete", functools.partial(delete_tag, f"s{i}"))
        except BaseException as exc:
            errors.append(exc)

    def referrer_churn(i: int) -> None:
        """Its referrer pushed and deleted meanwhile: counted live or not as it lands."""
        try:
            for _ in range(80):
                attempt("push", functools.partial(store.put_manifest, APP, sigs[i]))
                attempt(
                    "delete by digest",
                    functools.partial(store.delete_manifest, APP, sigs[i].digest),
                )
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for i in range(len(subjects)):
            threads.append(threading.Thread(target=subject_churn, args=(i,)))
            threads.append(threading.Thread(target=referrer_churn, args=(i,)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        print(f"\nconcurrent writers on PostgreSQL: {dict(done)}")
        assert done["push"] > 100
        assert done["tag delete"] > 20
        assert done["delete by digest"] > 10
        _clean(store)
    finally:
        store.close()
