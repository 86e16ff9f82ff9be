#!/usr/bin/env python3
"""Time Berth's start to its first painted window: the bundle next to a venv.

    xvfb-run -a .venv/bin/python packaging/measure-start.py \\
        --runs 7 [--cold] packaging/dist/berth/berth .venv/bin/berth

Each argument is a ``berth`` executable. Every run starts ``berth --smoke-test``
(see app/ui/smoke.py) with a private HOME whose embedded registry was set up by a
first, untimed run, and reads the time from the start of the process to its
"window painted" line, and to its exit (connected to its registry, quit). With
``--cold`` the page cache is dropped before every run (root only; it slows the
whole machine for a moment), so the files are read from disk as at a first start
after boot. Prints the median, minimum and maximum of each, in milliseconds.
Uses the display it is given (DISPLAY under xvfb-run), else offscreen.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAINTED = "berth: window painted"


def environment(home: Path) -> dict[str, str]:
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    if os.environ.get("DISPLAY"):
        env["DISPLAY"] = os.environ["DISPLAY"]
        env["XAUTHORITY"] = os.environ.get("XAUTHORITY", "")
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def one_run(berth: str, env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [berth, "--smoke-test"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    painted = None
    for line in proc.stdout:
        if painted is None and line.startswith(PAINTED):
            painted = time.perf_counter() - start
    status = proc.wait()
    done = time.perf_counter() - start
    if status != 0 or painted is None:
        raise SystemExit(f"{berth} --smoke-test failed (status {status})")
    return painted * 1000, done * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("berth", nargs="+", help="berth executables to compare")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each run")
    args = parser.parse_args()
    results: dict[str, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="berth-start-") as tmp:
        envs = {}
        for i, berth in enumerate(args.berth):
            envs[berth] = environment(Path(tmp) / f"home{i}")
            one_run(berth, envs[berth])  # sets up the embedded registry, untimed
            results[berth] = ([], [])
        for _ in range(args.runs):
            for berth in args.berth:  # interleaved: load changes hit both alike
                if args.cold:
                    drop_caches()
                painted, done = one_run(berth, envs[berth])
                results[berth][0].append(painted)
                results[berth][1].append(done)
    kind = "cold (page cache dropped)" if args.cold else "warm"
    print(f"{args.runs} {kind} runs each, ms from exec: median (min-max)")
    for berth, (painted_ms, done_ms) in results.items():
        print(
            f"{berth}\n  first paint {statistics.median(painted_ms):7.0f}"
            f" ({min(painted_ms):.0f}-{max(painted_ms):.0f})"
            f"   connected and quit {statistics.median(done_ms):7.0f}"
            f" ({min(done_ms):.0f}-{max(done_ms):.0f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
