"""Smoke checks for an installed Berth, wherever it came from (a wheel in a fresh
venv, the PyInstaller bundle): versions, the registry serving, and the desktop app
starting offscreen, painting its window, connecting to its embedded registry and
quitting cleanly (``berth --smoke-test``, see app/ui/smoke.py).

Everything runs with a scrubbed environment: a private HOME and XDG directories,
and a PATH without the development venv, so nothing can fall back on the source
tree or on the developer's own settings, keyring or registry.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from app import __version__
from tests.support.processes import ServerProcess

# A generous bound on one app run, so a hung start fails instead of hanging CI.
APP_RUN_LIMIT_S = 600


def private_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user who never ran Berth, with no keyring (unless
    ``extra`` says otherwise: the embedded registry then keeps its password in a
    0600 file) and Qt drawing offscreen."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(home / ".runtime"),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    (home / ".runtime").mkdir(mode=0o700, exist_ok=True)
    env.update(extra)
    return env


def check_versions(berth: Sequence[str], registry: Sequence[str], env: dict[str, str]) -> None:
    for argv, name in ((berth, "berth"), (registry, "berth-registry")):
        result = subprocess.run(
            [*argv, "--version"], capture_output=True, text=True, env=env, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{name} {__version__}"


def check_registry_serves(
    registry: Sequence[str], data: Path, env: dict[str, str], *extra: str
) -> None:
    """``serve --port 0`` comes up, asks for credentials on /v2/, stops on SIGTERM."""
    server = ServerProcess(
        [*registry, "serve", "--data", str(data), "--port", "0", *extra], env=env
    )
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answer = client.get("/v2/")
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer realm=")
        assert answer.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    finally:
        status = server.stop()
    assert status == 0, server.stderr_text()
    assert (data / "registry.db").exists() or "--database-url" in extra


@dataclass
class AppRun:
    status: int
    lines: list[str]
    stderr: str
    registry_command: str | None
    registry_pid: int | None

    def line(self, prefix: str) -> str | None:
        return next((x for x in self.lines if x.startswith(prefix)), None)


def run_app(
    berth: Sequence[str], *args: str, env: dict[str, str], cwd: Path, limit: float = APP_RUN_LIMIT_S
) -> AppRun:
    """``berth --smoke-test ARGS``, checked: window painted, connected to the
    embedded registry, that registry stopped, and the app exited 0."""
    proc = subprocess.run(
        [*berth, "--smoke-test", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=limit,
        check=False,
    )
    lines = [x.removeprefix("berth: ") for x in proc.stdout.splitlines()]
    embedded = next((x for x in lines if x.startswith("embedded registry /")), "")
    found = re.fullmatch(r"embedded registry (\S+) pid (\d+)", embedded)
    run = AppRun(
        proc.returncode,
        lines,
        proc.stderr,
        found.group(1) if found else None,
        int(found.group(2)) if found else None,
    )
    report = f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert run.status == 0, report
    assert "window painted" in lines, report
    assert run.line("connected to http://127.0.0.1:") is not None, report
    assert "embedded registry stopped" in lines, report
    assert run.registry_pid is not None, report
    assert not _is_running(run.registry_pid), "the embedded registry outlived the app"
    return run


def workspaces(run: AppRun) -> int:
    line = run.line("connected to ")
    found = re.search(r", (\d+) workspaces$", line or "")
    assert found, run.lines
    return int(found.group(1))


def _is_running(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state == "Z":
        return False
    if b"serve" in cmdline:
        os.kill(pid, signal.SIGKILL)  # do not leave it running for the next test
        return True
    return False  # the pid was reused by something else
