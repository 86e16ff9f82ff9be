"""``make run`` on a fresh machine: from launching ``berth --demo`` with a home that
never ran Berth to the first populated look (on demand:
``.venv/bin/pytest tests/benchmarks/bench_demo_start.py -s``).

The real app runs under Xvfb and is watched through the accessibility bus, as a
person would see it (tests/support/atspi.py), polling every 0.2 s. Printed, per run
and as medians of ``BENCH_ROUNDS`` (default 3), in seconds from the launch:

* tree: the navigator lists the demo's workspaces;
* images: the images table of the selected workspace lists an image;
* seeded: the status bar says the demo registry is running with nothing left to
  seed (the whole history in place).

Also printed: the load average before each run (other people share the machine).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from tests.packaging.smoke import private_env
from tests.support.atspi import Desktop, Node
from tests.support.processes import VENV_BIN

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WORKSPACES = {"acme", "globex", "initech"}


def _cells(desktop: Desktop, view: Node) -> list[str]:
    return [c.name for c in desktop.children(view) if c.role in ("table cell", "tree item")]


def _seeded(desktop: Desktop) -> bool:
    labels = desktop.find("label", "Embedded registry")
    return any(
        n.description.startswith("Demo registry: running") and "seeding" not in n.description
        for n in labels
    )


def one_run(tmp: Path) -> tuple[float, float, float]:
    env = private_env(tmp / "home")
    del env["QT_QPA_PLATFORM"]
    started = time.monotonic()
    desktop = Desktop([str(VENV_BIN / "berth"), "--demo"], env)
    try:
        tree = desktop.wait_one("tree", "Navigator", timeout=600)
        desktop.wait(lambda: set(_cells(desktop, tree)) >= WORKSPACES, "workspaces", 600)
        at_tree = time.monotonic() - started
        images = desktop.wait_one("table", "Images", timeout=600)
        desktop.wait(lambda: _cells(desktop, images), "an image listed", 600)
        at_images = time.monotonic() - started
        desktop.wait(lambda: _seeded(desktop), "the demo seeded", 600)
        at_seeded = time.monotonic() - started
    finally:
        desktop.close()
    return at_tree, at_images, at_seeded


def test_first_look_of_the_demo(tmp_path: Path) -> None:
    runs = []
    for i in range(ROUNDS):
        load = os.getloadavg()[0]
        tree, images, seeded = one_run(tmp_path / f"run{i}")
        runs.append((tree, images, seeded))
        print(
            f"\nrun {i + 1}: load {load:.1f}; tree {tree:.1f} s, images {images:.1f} s, "
            f"seeded {seeded:.1f} s"
        )
    med = [statistics.median(r[k] for r in runs) for k in range(3)]
    print(
        f"berth --demo, fresh home, {ROUNDS} runs (medians): tree {med[0]:.1f} s, "
        f"first image {med[1]:.1f} s, fully seeded {med[2]:.1f} s"
    )
