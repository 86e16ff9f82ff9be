"""SIGTERM and SIGINT close berth as its close button does (issue 11 item 8): the real
``berth`` process (offscreen, a private home, no keyring) on its embedded registry
gets the signal as a session logging out or Ctrl+C in its terminal sends it; it
saves its settings, stops the registry it started and waits for it, and exits with
128 + the signal's number."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.packaging.smoke import private_env
from tests.support.processes import VENV_BIN, children_of

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 120.0) -> T:
    """Poll until ``check()`` gives something (not None, not False); return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.1)


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def listening_port(pid: int) -> int | None:
    """The TCP port ``pid`` listens on (IPv4), from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
            return int(fields[1].split(":")[1], 16)
    return None


def talks_to(pid: int, port: int) -> bool:
    """Whether ``pid`` holds an established TCP connection to ``port``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if fields[3] == "01" and remote_port == port and fields[9] in inodes:
            return True
    return False


@pytest.mark.parametrize(
    ("signum", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGTERM to berth (logout)", "SIGINT to its process group (Ctrl+C)"],
)
def test_a_signal_closes_berth_like_its_close_button(
    tmp_path: Path, signum: signal.Signals, to_group: bool
) -> None:
    home = tmp_path / "home"
    env = private_env(home)
    data = tmp_path / "registry"
    app = subprocess.Popen(
        [str(VENV_BIN / "berth"), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives it
    )
    try:
        serve = wait_for(
            lambda: next((c for c in children_of(app.pid) if "serve" in _argv(c)), None),
            "the embedded registry to start",
        )
        port = wait_for(lambda: listening_port(serve), "the embedded registry to listen")
        with httpx.Client(timeout=30) as client:
            assert client.get(f"http://127.0.0.1:{port}/v2/").status_code == 401
        # The window has connected: it holds a connection to its registry.
        wait_for(lambda: talks_to(app.pid, port), "berth to connect to its registry")

        if to_group:
            os.killpg(app.pid, signum)
        else:
            app.send_signal(signum)
        status = app.wait(120)
        # The registry was stopped and waited for before berth exited.
        assert not alive(serve), "the embedded registry outlived berth"
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(30)
        stderr = app.stderr.read() if app.stderr else ""
        if app.stderr:
            app.stderr.close()
    assert status == 128 + signum, stderr
    settings = (home / ".config" / "berth" / "Berth.conf").read_text()
    assert "geometry=" in settings  # the layout was saved, as on closing the window
    assert "header" in settings
    assert "Traceback" not in stderr


def test_sigterm_while_the_demo_is_seeded_leaves_nothing_running(tmp_path: Path) -> None:
    """Logging out during ``make run``'s first start: the demo's seeding and its
    registry are stopped with the window, nothing outlives berth, and the settings
    are saved (the demo keeps its own)."""
    home = tmp_path / "home"
    app = subprocess.Popen(
        [str(VENV_BIN / "berth"), "--demo", "--data-dir", str(tmp_path / "demo")],
        env=private_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def seeding_and_serving() -> list[int] | None:
        kids = children_of(app.pid)
        commands = [_argv(c) for c in kids]
        both = any("demo" in a for a in commands) and any("serve" in a for a in commands)
        return kids if both else None

    try:
        children = wait_for(seeding_and_serving, "the demo's seeding beside its registry")
        app.send_signal(signal.SIGTERM)
        status = app.wait(120)
        left = [c for c in children if alive(c)]
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(30)
        stderr = app.stderr.read() if app.stderr else ""
        if app.stderr:
            app.stderr.close()
    assert status == 128 + signal.SIGTERM, stderr
    assert left == [], [_argv(c) for c in left]
    assert "geometry=" in (home / ".config" / "berth" / "Berth-demo.conf").read_text()
    assert "Traceback" not in stderr
