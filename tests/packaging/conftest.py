"""Packaging tests: the desktop files, the icon, the systemd unit, and Berth built
(sdist, wheel, PyInstaller bundle) and run outside the source tree.

``installed`` is built once per session and shared by the wheel and bundle tests:
a copy of the source tree (what a fresh clone plus the uncommitted work holds; no
build ever writes into the real tree), the sdist and wheel built from it, and a
fresh venv outside the tree with the wheel and its real dependencies from PyPI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[2]


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert result.returncode == 0, f"{argv}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def source_copy(dest: Path) -> Path:
    listed = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], ROOT)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode & 0o777)
    return dest


@dataclass(frozen=True)
class Installed:
    src: Path
    dist: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    top = tmp_path_factory.mktemp("installed")
    src = source_copy(top / "src")
    dist = top / "dist"
    # python -m build makes the sdist, then the wheel from the sdist.
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(src)], top)
    venv = top / "venv"
    run([sys.executable, "-m", "venv", str(venv)], top)
    (wheel,) = dist.glob("berth-*.whl")
    run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-compile", str(wheel)], top)
    return Installed(src, dist, venv)
