"""Engine set-up, transactions and migrations for SQLite and PostgreSQL.

Writes on SQLite run under ``BEGIN IMMEDIATE`` so a transaction holds the write lock
from its first statement: that is the SQLite form of the row locks the GC relies on
(DESIGN.md, race safety rule 3). Lock waits are bounded; a timeout surfaces as
:class:`Busy`, which the HTTP layers answer with 503 and a retry hint.

SQLite has one writer at a time, and a writer that finds the lock taken sleeps in
SQLite's busy handler (1, 2, 5 ... 100 ms naps) rather than queueing: with a few
concurrent pushes most of them woke late, or not before the timeout (503). So write
transactions of this process first take their turn in a FIFO queue
(:class:`WriteQueue`) and only then ``BEGIN IMMEDIATE``; the busy handler is left for
other processes (``gc``, ``fsck``). A turn not given within ``QUEUE_TIMEOUT_S`` is
genuine overload and answers :class:`Busy` as before.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

LOCK_TIMEOUT_S = 5.0
# How long a write may wait for its turn in this process before the caller is told
# to retry (the queue moves in milliseconds per write; this is overload).
QUEUE_TIMEOUT_S = 10.0
# pg_advisory_lock key held while migrating ("berth" + 1 in ASCII, as a number).
MIGRATION_LOCK = 0x626572746831
MIGRATIONS = Path(__file__).with_name("migrations")


class Busy(Exception):
    """A lock could not be taken in time; the caller should retry."""


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the row an INSERT just wrote."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def now_ms() -> int:
    return int(time.time() * 1000)


class WriteQueue:
    """A lock handed over in arrival order (``threading.Lock`` wakes an arbitrary
    waiter, so under load a write could starve until its timeout)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiting: deque[threading.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over just as the wait ran out
                return True
            self._waiting.remove(turn)
            return False

    def release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().set()  # the lock passes on, still held
            else:
                self._held = False


def _is_lock_error(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return (
        "database is locked" in text
        or "database table is locked" in text
        or "lock timeout" in text
        or "could not obtain lock" in text
        or "deadlock detected" in text
        or "could not serialize" in text
    )


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.write_queue: WriteQueue | None = WriteQueue() if self.is_sqlite else None
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": LOCK_TIMEOUT_S}
            kwargs["pool_size"] = 16
            kwargs["max_overflow"] = 16
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 20
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            self._configure_sqlite(self.engine)
        else:
            self._configure_postgres(self.engine)

    @staticmethod
    def _configure_sqlite(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy's begin event, not pysqlite, decide how transactions start.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT_S * 1000)}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            mode = "DEFERRED" if conn.get_execution_options().get("readonly") else "IMMEDIATE"
            conn.exec_driver_sql(f"BEGIN {mode}")

    @staticmethod
    def _configure_postgres(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"SET lock_timeout = '{int(LOCK_TIMEOUT_S * 1000)}ms'")
            cur.close()
            dbapi_conn.commit()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; commits on success, rolls back on error. On SQLite it
        waits for its turn among this process's writes first."""
        queue = self.write_queue
        if queue is not None and not queue.acquire(QUEUE_TIMEOUT_S):
            raise Busy(f"no turn to write within {QUEUE_TIMEOUT_S:.0f} s")
        try:
            with self._transaction() as conn:
                yield conn
        finally:
            if queue is not None:
                queue.release()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            if _is_lock_error(exc):
                raise Busy(str(exc.orig)) from exc
            raise
        except DBAPIError as exc:
            if _is_lock_error(exc):
                raise Busy(str(exc.orig)) from exc
            raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot on both dialects: SQLite's
        deferred transaction under WAL, PostgreSQL's REPEATABLE READ)."""
        options: dict[str, Any] = {"readonly": True}
        if not self.is_sqlite:
            options["isolation_level"] = "REPEATABLE READ"
        try:
            with self.engine.connect().execution_options(**options) as conn, conn.begin():
                yield conn
        except OperationalError as exc:
            if _is_lock_error(exc):
                raise Busy(str(exc.orig)) from exc
            raise

    def migrate(self) -> None:
        """Bring the schema to the latest revision (run on every start). On
        PostgreSQL the nodes of a cluster may start together: an advisory lock lets
        one migrate while the others wait, then find nothing left to do."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
                conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if conn.in_transaction():
                    conn.commit()
            finally:
                if not self.is_sqlite:
                    if conn.in_transaction():
                        conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                    conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'registry.db'}"


def holds_schema(url: str) -> bool:
    """Whether the database at ``url`` has been made a registry's (migrated at least
    once), looked at without creating anything: connecting to a missing SQLite file
    would create it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not (
        parsed.database and Path(parsed.database).is_file()
    ):
        return False
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(inspect(conn).has_table("alembic_version"))
    finally:
        engine.dispose()
