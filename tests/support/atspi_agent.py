"""The accessibility-bus side of the AT-SPI tests, run by the system's Python.

pyatspi is a Debian package for /usr/bin/python3 (python3-pyatspi), not something
the project's venv can install, so this script imports nothing of the project. It
is started inside ``dbus-run-session``, starts the program given after ``--`` (the
``berth`` a test launches as a user would), and then answers one JSON request per
line on stdin with one JSON line on stdout (marked: the bus's services write there
too), as an assistive tool would ask:

    {"op": "find", "role": "table cell", "name": "frontend", "within": 12}
    -> {"ok": true, "nodes": [{"id": 31, "role": "table cell", "name": "frontend",
        "x": 290, "y": 140, "w": 120, "h": 22, "states": ["showing", ...]}, ...]}
    {"op": "children", "id": 12}      -> the same node list, of its children
    {"op": "node", "id": 12}          -> {"ok": true, "node": {...}} (re-read)
    {"op": "exit"}                    -> ends the program (SIGTERM) and reports its status

Only showing nodes are searched (hidden pages of a tab widget are skipped), so a
search costs what the screen shows. Coordinates are the screen's (no window
manager: the screen is the desktop), as xdotool needs them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pyatspi  # type: ignore[import-not-found]

APP_WAIT_S = 120.0
# Services D-Bus starts on demand share this stdout: replies are the marked lines.
REPLY = "@atspi-reply "
MAX_NODES = 20_000  # a search never walks more than this (a runaway table)


class Agent:
    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv)
        self.nodes: dict[int, Any] = {}
        self.ids: dict[int, int] = {}  # id(accessible) is not stable; we hand out our own
        self.app: Any = None

    def application(self) -> Any:
        """The program's application node on the bus (found by its process id)."""
        if self.app is not None:
            return self.app
        deadline = time.monotonic() + APP_WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the program exited with status {self.proc.returncode}")
            desktop = pyatspi.Registry.getDesktop(0)
            for i in range(desktop.childCount):
                app = desktop.getChildAtIndex(i)
                try:
                    if app is not None and app.get_process_id() == self.proc.pid:
                        self.app = app
                        return app
                except Exception:  # an application that left the bus meanwhile
                    continue
            time.sleep(0.2)
        raise RuntimeError("the program never appeared on the accessibility bus")

    def remember(self, acc: Any) -> int:
        node_id = len(self.nodes) + 1
        self.nodes[node_id] = acc
        return node_id

    def describe(self, acc: Any, node_id: int | None = None) -> dict[str, Any]:
        node_id = node_id if node_id is not None else self.remember(acc)
        try:
            ext = acc.queryComponent().getExtents(pyatspi.DESKTOP_COORDS)
            box = {"x": ext.x, "y": ext.y, "w": ext.width, "h": ext.height}
        except NotImplementedError:
            box = {"x": 0, "y": 0, "w": 0, "h": 0}
        states = acc.getState()
        return {
            "id": node_id,
            "role": acc.getRoleName(),
            "name": acc.name or "",
            "description": acc.description or "",
            "children": acc.childCount,
            "states": sorted(pyatspi.stateToString(s) for s in states.getStates()),
            **box,
        }

    def find(self, role: str | None, name: str | None, within: int | None) -> list[dict[str, Any]]:
        root = self.nodes[within] if within else self.application()
        found: list[dict[str, Any]] = []
        stack = [root]
        walked = 0
        while stack and walked < MAX_NODES:
            acc = stack.pop()
            walked += 1
            if acc is None:
                continue
            try:
                matches = (role is None or acc.getRoleName() == role) and (
                    name is None or (acc.name or "") == name
                )
                if matches and acc is not root:
                    found.append(self.describe(acc))
                showing = acc.getState().contains(pyatspi.STATE_SHOWING)
                if acc is root or showing or acc.getRoleName() in ("application", "frame"):
                    stack.extend(acc.getChildAtIndex(i) for i in reversed(range(acc.childCount)))
            except Exception:  # a node that went away while we walked (a row removed)
                continue
        return found

    def children(self, node_id: int) -> list[dict[str, Any]]:
        """The node's children; none if the node went away (a view rebuilt its rows),
        and a child that goes away while we read it is left out: the test polls."""
        acc = self.nodes[node_id]
        out = []
        try:
            count = acc.childCount
        except Exception:
            return []
        for i in range(count):
            try:
                child = acc.getChildAtIndex(i)
                if child is not None:
                    out.append(self.describe(child))
            except Exception:
                continue
        return out

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "find":
            return {
                "ok": True,
                "nodes": self.find(request.get("role"), request.get("name"), request.get("within")),
            }
        if op == "children":
            return {"ok": True, "nodes": self.children(request["id"])}
        if op == "node":
            return {"ok": True, "node": self.describe(self.nodes[request["id"]], request["id"])}
        if op == "status":
            return {"ok": True, "returncode": self.proc.poll()}
        if op == "exit":
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            return {"ok": True, "returncode": self.proc.wait(request.get("timeout", 60))}
        return {"ok": False, "error": f"unknown op {op!r}"}


def main() -> int:
    argv = sys.argv[sys.argv.index("--") + 1 :]
    agent = Agent(argv)
    try:
        for line in sys.stdin:
            try:
                reply = agent.answer(json.loads(line))
            except Exception as exc:  # reported to the test, which decides
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(REPLY + json.dumps(reply), flush=True)
    finally:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
