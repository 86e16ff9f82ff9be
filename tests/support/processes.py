"""Start and stop real server processes for tests; find processes left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def children_of(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (zombies excluded), read from /proc."""
    parents: dict[int, int] = {}
    states: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses.
        rest = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(rest[1])
        states[int(entry.name)] = rest[0]
    out: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent:
                frontier.append(child)
                if states.get(child) != "Z":
                    out.append(child)
    return out


class ServerProcess:
    """A child process that prints ``listening on URL`` when ready."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        ready_timeout: float = 30.0,
        cwd: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        # A long-running, chatty server writes to a file: a pipe nobody reads fills
        # up (64 KiB) and blocks it.
        self.log_file = log_file
        self._log = open(log_file, "ab") if log_file is not None else None  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + ready_timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("listening on "):
                break
            if not line and self.proc.poll() is not None:
                break
        if not line.startswith("listening on "):
            if self.alive():
                self.proc.kill()
            self.proc.wait(10)
            # Read what it said before closing the pipes.
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self._close()
            raise RuntimeError(f"{self.argv[0]} did not start: {line!r} {err}")
        self.url = line.split(" ", 2)[2].strip()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)
        self._close()

    def stop(self, timeout: float = 15.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close()
        return self.proc.returncode

    def stderr_text(self) -> str:
        if self.log_file is not None:
            return self.log_file.read_text(errors="replace")
        return self.proc.stderr.read() if self.proc.stderr and not self.proc.stderr.closed else ""

    def _close(self) -> None:
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        if self._log is not None:
            self._log.close()
