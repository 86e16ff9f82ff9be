"""A desktop session for end-to-end tests through the accessibility bus: an X server
(Xvfb), a D-Bus session with the AT-SPI bus (``dbus-run-session``; the bus launcher
is started on demand by D-Bus activation), a program started in it as a user starts
it, widgets found by role and name as a screen reader finds them
(``tests/support/atspi_agent.py``, run by the system's Python for pyatspi), and
real pointer and key events from ``xdotool``.

Every wait polls for an exact state and names it when it gives up; nothing sleeps
for a fixed time, so a busy machine only makes a run slower.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.tools import require

AGENT = Path(__file__).with_name("atspi_agent.py")
REPLY = "@atspi-reply "  # how the agent marks its answers (see atspi_agent.py)
SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-pyatspi lives
WAIT_S = 120.0
POLL_S = 0.2


@dataclass(frozen=True)
class Node:
    """One accessible object as the bus described it when asked."""

    id: int
    role: str
    name: str
    description: str
    children: int
    states: tuple[str, ...]
    x: int
    y: int
    w: int
    h: int

    @property
    def centre(self) -> tuple[int, int]:
        return self.x + self.w // 2, self.y + self.h // 2

    @classmethod
    def parse(cls, body: dict[str, Any]) -> Node:
        return cls(**{**body, "states": tuple(body["states"])})


class Desktop:
    """Xvfb + a D-Bus session + the program under test, driven like a person would."""

    def __init__(
        self, argv: Sequence[str], env: dict[str, str], *, size: tuple[int, int] = (1400, 900)
    ) -> None:
        self.xdotool = require("xdotool")
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            [require("Xvfb"), "-displayfd", str(write), "-screen", "0",
             f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(write)
        with os.fdopen(read) as ready:
            number = ready.readline().strip()  # written once the server accepts clients
        assert number, "Xvfb did not start"
        self.display = f":{number}"
        self.env = {**env, "DISPLAY": self.display, "QT_LINUX_ACCESSIBILITY_ALWAYS_ON": "1"}
        self.agent = subprocess.Popen(
            [require("dbus-run-session"), "--", SYSTEM_PYTHON, str(AGENT), "--", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        self.returncode: int | None = None

    # --- asking the bus ---------------------------------------------------------------
    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.agent.stdin is not None
        assert self.agent.stdout is not None
        self.agent.stdin.write(json.dumps(request) + "\n")
        self.agent.stdin.flush()
        while True:
            line = self.agent.stdout.readline()
            assert line, f"the AT-SPI agent ended (status {self.agent.poll()})"
            if line.startswith(REPLY):
                break
            sys.stderr.write(line)  # the session's services say things too
        reply: dict[str, Any] = json.loads(line[len(REPLY) :])
        assert reply.get("ok"), f"AT-SPI agent: {reply.get('error')}"
        return reply

    def find(
        self, role: str | None = None, name: str | None = None, within: Node | None = None
    ) -> list[Node]:
        reply = self.ask(op="find", role=role, name=name, within=within.id if within else None)
        return [Node.parse(n) for n in reply["nodes"]]

    def children(self, node: Node) -> list[Node]:
        return [Node.parse(n) for n in self.ask(op="children", id=node.id)["nodes"]]

    def wait(self, check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
        """Poll ``check()`` until it returns something true; return that."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if self.program_status() is not None:
                raise AssertionError(f"the program exited ({self.returncode}) before: {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting: {what}")
            time.sleep(POLL_S)

    def wait_one(
        self, role: str, name: str, within: Node | None = None, timeout: float = WAIT_S
    ) -> Node:
        """The one showing node of ``role`` named ``name`` (waits until there is one)."""

        def one() -> Node | None:
            nodes = [n for n in self.find(role, name, within) if n.w > 0 and n.h > 0]
            return nodes[0] if len(nodes) == 1 else None

        try:
            found: Node = self.wait(one, f"one {role} named {name!r}", timeout)
        except AssertionError as exc:
            if self.program_status() is not None:
                raise
            there = sorted({n.name for n in self.find(role, None, within)})
            raise AssertionError(f"{exc}; showing {role}s: {there}") from None
        return found

    def program_status(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.ask(op="status")["returncode"]
        return self.returncode

    # --- a person's input -------------------------------------------------------------
    def _xdotool(self, *args: str) -> None:
        subprocess.run([self.xdotool, *args], env=self.env, check=True, timeout=60)

    def click(self, node: Node) -> None:
        x, y = node.centre
        self._xdotool("mousemove", "--sync", str(x), str(y), "click", "1")

    def drag(self, start: Node, end: Node, steps: int = 8) -> None:
        """Press on ``start``, move across to ``end`` in steps, release there."""
        (x0, y0), (x1, y1) = start.centre, end.centre
        self._xdotool("mousemove", "--sync", str(x0), str(y0), "mousedown", "1")
        for i in range(1, steps + 1):
            x, y = x0 + (x1 - x0) * i // steps, y0 + (y1 - y0) * i // steps
            self._xdotool("mousemove", "--sync", str(x), str(y))
        self._xdotool("mouseup", "1")

    def key(self, *keys: str) -> None:
        """Key presses (xdotool names: Delete, Return, ctrl+q) to the focused window."""
        self._xdotool("key", "--delay", "50", *keys)

    def type(self, text: str) -> None:
        self._xdotool("type", "--delay", "30", text)

    # --- the end ----------------------------------------------------------------------
    def close(self) -> None:
        """End the session: the program (SIGTERM if it still runs), the bus, the X server."""
        try:
            if self.agent.poll() is None:
                try:
                    self.returncode = self.ask(op="exit")["returncode"]
                finally:
                    assert self.agent.stdin is not None
                    self.agent.stdin.close()
                    self.agent.wait(60)
        finally:
            if self.agent.poll() is None:
                self.agent.kill()
                self.agent.wait(10)
            for pipe in (self.agent.stdin, self.agent.stdout):
                if pipe is not None and not pipe.closed:
                    pipe.close()
            self.xvfb.terminate()
            self.xvfb.wait(30)
