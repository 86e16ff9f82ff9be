"""SQLite write transactions of one process take turns in arrival order before
``BEGIN IMMEDIATE``: many concurrent writers wait their turn instead of failing
after SQLite's busy timeout; a turn that does not come in time is overload (Busy,
which the HTTP layers answer with 503 and Retry-After)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from app.registry.db import engine
from app.registry.db import schema as s
from app.registry.db.engine import Busy, Database

WRITERS = 32
HOLD_S = 0.2  # 32 x 0.2 s is past SQLite's 5 s busy timeout


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    database.migrate()
    return database


def test_many_writers_wait_their_turn_in_order(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The queue may wait as long as it takes; SQLite's own busy wait stays 5 s, so a
    # writer that reached BEGIN IMMEDIATE while another held the lock would fail.
    monkeypatch.setattr(engine, "QUEUE_TIMEOUT_S", 60.0)
    arrived: list[int] = []
    served: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        try:
            with lock:
                arrived.append(n)
            with db.write() as conn:
                served.append(n)
                conn.execute(insert(s.settings).values(key=f"k{n}", value=str(n)))
                time.sleep(HOLD_S)
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        threads = []
        for n in range(WRITERS):
            threads.append(threading.Thread(target=writer, args=(n,)))
            threads[-1].start()
            time.sleep(0.01)  # arrive one after another
        for t in threads:
            t.join()
        assert errors == []
        assert served == arrived  # first come, first served
        with db.read() as conn:
            keys = set(conn.execute(select(s.settings.c.key)).scalars())
        assert {f"k{n}" for n in range(WRITERS)} <= keys
    finally:
        db.dispose()


def test_a_turn_that_never_comes_is_busy(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "QUEUE_TIMEOUT_S", 0.2)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with db.write():
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        with pytest.raises(Busy, match="no turn to write"), db.write():
            pass
        # Readers are not queued.
        with db.read() as conn:
            conn.execute(select(s.settings.c.key)).all()
    finally:
        release.set()
        holder.join()
    with db.write() as conn:  # the queue is free again, and not left held
        conn.execute(insert(s.settings).values(key="after", value="1"))
    db.dispose()
