"""GC runs are recorded (gc_runs, audit log, an event) and sampled; "run now" and
the ``gc`` command."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.registry import cli
from app.registry.db import schema as s
from app.registry.db.engine import now_ms
from app.registry.gc import collector as gc
from app.registry.gc import reviews, samples
from tests.support import oci
from tests.support.inprocess import Store
from tests.support.processes import VENV_BIN

APP = "acme/web/app"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    # Real time here: run_now and the command line read the clock themselves.
    st = Store(tmp_path / "data", review_delay_ms=3_600_000, grace_ms=0)
    st.now = now_ms()
    try:
        yield st
    finally:
        st.close()


def _push_and_delete(store: Store) -> int:
    shared = oci.random_layer(4000, "runs-shared")
    gone = oci.random_layer(3000, "runs-gone")
    doomed = oci.image([shared, gone], label="doomed")
    store.push(APP, doomed, "old")
    store.push("acme/api/keep", oci.image([shared], label="keep"), "v1")
    store.delete_tag(APP, "old")
    return gone.size + doomed.blobs[0].size


def test_run_now_ignores_the_delay_and_records_the_run(store: Store) -> None:
    freed = _push_and_delete(store)
    ws = store.workspace_id()

    async def collect() -> tuple[gc.GcRun, dict[str, Any]]:
        store.reg.events.bind(asyncio.get_running_loop())
        queue = store.reg.events.subscribe(ws)
        run = await asyncio.to_thread(gc.run_now, store.reg, ws)
        return run, await asyncio.wait_for(queue.get(), 30)

    run, event = asyncio.run(collect())
    assert run.workspace_id == ws
    assert run.manifests_deleted == 1
    assert run.blobs_deleted == 2
    assert run.bytes_freed == freed
    assert set(run.triggers) >= {gc.MANUAL, reviews.TAG_DELETE}
    assert run.started_at >= store.now
    assert run.duration_ms >= 0

    assert event["type"] == "gc_run"
    assert event["run"] == run.as_dict()
    with store.reg.db.read() as conn:
        row = conn.execute(select(s.gc_runs)).one()
        audit = conn.execute(select(s.audit_log).where(s.audit_log.c.action == "gc.run")).one()
        history = samples.history(conn, ws)
    assert row.id == run.id
    assert row.triggers == ",".join(run.triggers)
    assert (row.manifests_deleted, row.blobs_deleted, row.bytes_freed) == (1, 2, freed)
    assert audit.actor is None
    assert audit.target == "acme"
    assert json.loads(audit.detail)["bytes_freed"] == freed
    # A point just before the run (pending high) and one after (pending gone).
    assert [h.pending for h in history] == [freed, 0]
    assert history[0].stored - history[1].stored == freed


def test_run_now_on_an_idle_workspace_still_records_a_run(store: Store) -> None:
    run = gc.run_now(store.reg, store.workspace_id("globex"))
    assert run.triggers == [gc.MANUAL]
    assert (run.manifests_deleted, run.blobs_deleted, run.bytes_freed) == (0, 0, 0)


def test_passes_that_review_nothing_are_not_recorded(store: Store) -> None:
    assert gc.run_pass(store.reg) == []
    _push_and_delete(store)
    assert gc.run_pass(store.reg) == []  # the delay has an hour to go
    with store.reg.db.read() as conn:
        assert conn.execute(select(s.gc_runs)).first() is None


def test_samples_are_throttled_but_follow_changes(store: Store) -> None:
    ws = store.workspace_id()
    t = 1_000_000
    first = samples.record_if_changed(store.reg.db, ws, t)
    assert first is not None
    assert first.stored == 0
    assert samples.record_if_changed(store.reg.db, ws, t + 1) is None  # nothing changed
    store.upload(APP, oci.random_layer(500, "sampled"))
    assert samples.record_if_changed(store.reg.db, ws, t + 2) is None  # too soon
    later = samples.record_if_changed(store.reg.db, ws, t + samples.MIN_INTERVAL_MS)
    assert later is not None
    assert later.stored > 0
    assert later.pending == later.stored  # uploaded, referenced by nothing yet
    quiet = t + samples.MIN_INTERVAL_MS + samples.HEARTBEAT_MS
    assert samples.record_if_changed(store.reg.db, ws, quiet - 1) is None
    assert samples.record_if_changed(store.reg.db, ws, quiet) is not None
    assert samples.sample_all(store.reg.db, quiet + 1) == 1  # globex's first point


def _gc(store: Store, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["gc", "--data", str(store.reg.data_dir), *args])
    return code, capsys.readouterr().out


def test_gc_once_from_the_command_line(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    freed = _push_and_delete(store)
    code, out = _gc(store, "--once", "--gc-upload-grace", "0", capsys=capsys)
    assert code == 0
    # Only the uploads' own reviews were due (the grace is 0): they keep everything.
    assert out == "gc: nothing to collect\n"
    code, out = _gc(
        store, "--once", "--ignore-review-delay", "--gc-upload-grace", "0", capsys=capsys
    )
    assert code == 0
    assert f"gc: workspace acme: 1 manifests and 2 blobs deleted, {freed / 1024:.1f} KiB" in out
    assert "(triggers: tag_delete)" in out
    code, out = _gc(store, "--once", "--ignore-review-delay", capsys=capsys)
    assert out == "gc: nothing to collect\n"


def test_gc_never_ignores_the_grace_it_is_given(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    _push_and_delete(store)
    code, out = _gc(store, "--once", "--ignore-review-delay", capsys=capsys)  # grace: 1 h
    assert code == 0
    assert "0 manifests and 0 blobs deleted" in out
    assert store.manifest_ids(APP)


def test_gc_for_an_unknown_workspace_is_a_usage_error(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["gc", "--data", str(store.reg.data_dir), "--once", "--workspace", "nope"]) == 2


def test_gc_without_once_collects_until_stopped(store: Store) -> None:
    _push_and_delete(store)
    store.reg.close()
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "berth-registry"),
            "gc",
            "--data",
            str(store.reg.data_dir),
            "--gc-upload-grace",
            "0",
            "--workspace",
            "acme",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Make the tag delete's review due now; the running worker picks it up.
        with store.reg.db.write() as conn:
            conn.execute(s.gc_manifest_reviews.update().values(review_after=0))
        deadline = time.monotonic() + 60
        while store.manifest_ids(APP) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.manifest_ids(APP) == {}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.communicate()
