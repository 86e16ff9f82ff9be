"""The sdist and wheel (``python -m build``: the wheel is built from the sdist, so
the sdist is complete) install with their real dependencies into a fresh venv
outside the source tree, and run from there: versions, the registry, and the
desktop app with its embedded registry started from the installed package."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import pytest

from app import __version__
from app.ui.app_icon import DESKTOP_ID, SIZES
from tests.packaging.conftest import Installed, run
from tests.packaging.smoke import (
    check_registry_serves,
    check_versions,
    private_env,
    run_app,
    workspaces,
)

SDIST_EXTRAS = (
    f"resources/{DESKTOP_ID}.desktop",
    f"resources/{DESKTOP_ID}.metainfo.xml",
    "resources/screenshots/main-window.png",
    "packaging/berth.spec",
    "packaging/build-bundle.sh",
    "packaging/systemd/berth-registry.service",
)

pytestmark = pytest.mark.slow


def test_wheel_and_sdist_contents(installed: Installed) -> None:
    (wheel,) = installed.dist.glob(f"berth-{__version__}-py3-none-any.whl")
    (sdist,) = installed.dist.glob(f"berth-{__version__}.tar.gz")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "app/registry/db/migrations/env.py" in names
    assert "app/registry/db/migrations/versions/0001_initial_schema.py" in names
    for size in SIZES:
        assert f"app/ui/resources/icons/hicolor/{size}x{size}/apps/{DESKTOP_ID}.png" in names
    assert not any(n.startswith("tests/") for n in names)
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    for name in SDIST_EXTRAS:
        assert name in members, f"{name} is missing from the sdist"


def test_installed_outside_the_source_tree(installed: Installed, tmp_path: Path) -> None:
    where = run([str(installed.bin / "python"), "-c", "import app; print(app.__file__)"], tmp_path)
    assert Path(where.strip()).is_relative_to(installed.venv)


def test_versions_and_registry(installed: Installed, tmp_path: Path) -> None:
    env = private_env(tmp_path / "home")
    berth, registry = str(installed.bin / "berth"), str(installed.bin / "berth-registry")
    check_versions([berth], [registry], env)
    check_registry_serves([registry], tmp_path / "data", env)


def test_app_starts_the_installed_registry(installed: Installed, tmp_path: Path) -> None:
    # First start with no connection: the app makes and starts its embedded
    # registry, the venv's own berth-registry, and stops it when it quits.
    env = private_env(tmp_path / "home")
    first = run_app([str(installed.bin / "berth")], env=env, cwd=tmp_path)
    assert first.registry_command == str(installed.bin / "berth-registry")
    assert first.line("keyring keyring.backends.fail.Keyring") is not None


def test_demo(installed: Installed, tmp_path: Path) -> None:
    """``berth --demo``: the installed registry seeds its demo data (three workspaces)."""
    env = private_env(tmp_path / "home")
    demo = run_app([str(installed.bin / "berth")], "--demo", env=env, cwd=tmp_path)
    assert demo.registry_command == str(installed.bin / "berth-registry")
    assert workspaces(demo) >= 3
