"""A throwaway PostgreSQL server for tests (Debian's binaries, run as the
``postgres`` user when the tests run as root, since initdb refuses root)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"PostgreSQL's {name} is not installed; run `make deps`")
    return path


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        # Its own directory outside pytest's tmp tree: that tree is private to root,
        # and the server runs as the postgres user.
        root = Path(tempfile.mkdtemp(prefix="berth-pg-"))
        self.root = root
        self.data = root / "pgdata"
        self.port = _free_port()
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        subprocess.run(
            _as_owner(
                [_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "berth", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_owner(
                [
                    _bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(root / "log"),
                    "-w",
                    "-o",
                    f"-p {self.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def create_database(self, name: str, icu_locale: str | None = None) -> str:
        """A new database; with ``icu_locale`` its default collation is that
        language's (as on servers set up with en_US.UTF-8), not byte order."""
        sql = f"CREATE DATABASE {name}"
        if icu_locale is not None:
            sql += f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}' LOCALE 'C'"
        for _ in range(50):
            result = subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "berth",
                    "-d",
                    "postgres",
                    "-c",
                    sql,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(result.stderr)
        return f"postgresql+psycopg://berth@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(
            _as_owner([_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        # The cluster's files (about 90 MB) go with it: a test run starts dozens.
        shutil.rmtree(self.root, ignore_errors=True)
