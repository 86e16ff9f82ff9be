"""The PyInstaller bundle: built by packaging/build-bundle.sh (reusing the wheel
test's fresh venv as its build venv), moved away from where it was built, and
smoke-tested like the wheel, plus what a frozen bundle tends to lose: SQLAlchemy's
PostgreSQL dialect and psycopg, the keyring's Secret Service backend, QtCharts,
the Alembic migration scripts, the icons.

To check a bundle that exists already (``make bundle-check``, or an unpacked one):

    BERTH_BUNDLE=/opt/berth packaging/smoke-bundle.sh
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.ui.app_icon import DESKTOP_ID, SIZES
from tests.packaging.conftest import Installed, run
from tests.packaging.smoke import (
    check_registry_serves,
    check_versions,
    private_env,
    run_app,
    workspaces,
)
from tests.support.postgres import PostgresServer
from tests.support.tools import require

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("BERTH_BUNDLE")
    if given:
        path = Path(given).resolve()
        if not (path / "berth").is_file():
            pytest.fail(f"BERTH_BUNDLE={given} holds no bundle: build it with `make bundle`")
        return path
    installed: Installed = request.getfixturevalue("installed")
    run(
        [str(installed.src / "packaging/build-bundle.sh")],
        installed.src,
        env={"BUNDLE_VENV": str(installed.venv)},
    )
    # Run it from elsewhere, as after unpacking it on another machine.
    moved = tmp_path_factory.mktemp("opt") / "berth"
    (installed.src / "packaging/dist/berth").rename(moved)
    return moved


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return private_env(tmp_path / "home")


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def test_one_executable_two_programs(bundle: Path, env: dict[str, str]) -> None:
    assert (bundle / "berth-registry").resolve() == (bundle / "berth").resolve()
    check_versions([str(bundle / "berth")], [str(bundle / "berth-registry")], env)


def test_contents(bundle: Path) -> None:
    internal = bundle / "_internal"
    assert (internal / "app/registry/db/migrations/env.py").is_file()
    assert (internal / "app/registry/db/migrations/versions/0001_initial_schema.py").is_file()
    for size in SIZES:
        name = f"app/ui/resources/icons/hicolor/{size}x{size}/apps/{DESKTOP_ID}.png"
        assert (internal / name).is_file()
    assert list(internal.glob("PySide6/QtCharts.*.so"))
    assert list(internal.glob("PySide6/Qt/lib/libQt6Charts.so.*"))
    assert list(internal.glob("PySide6/Qt/plugins/platforms/libqxcb.so"))
    assert (bundle / f"share/applications/{DESKTOP_ID}.desktop").is_file()
    assert (bundle / f"share/metainfo/{DESKTOP_ID}.metainfo.xml").is_file()


def test_registry_serves_on_sqlite(bundle: Path, env: dict[str, str], tmp_path: Path) -> None:
    check_registry_serves([str(bundle / "berth-registry")], tmp_path / "data", env)


def test_registry_serves_on_postgresql(
    bundle: Path, env: dict[str, str], tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.create_database("berth_bundle")
    check_registry_serves(
        [str(bundle / "berth-registry")], tmp_path / "data", env, "--database-url", url
    )


def test_app_starts_its_own_registry(bundle: Path, env: dict[str, str], tmp_path: Path) -> None:
    first = run_app([str(bundle / "berth")], env=env, cwd=tmp_path)
    assert first.registry_command == str(bundle / "berth-registry")
    # A second start reuses the data and the password kept beside it.
    again = run_app([str(bundle / "berth")], env=env, cwd=tmp_path)
    assert again.line("connected to") is not None


def test_demo(bundle: Path, env: dict[str, str], tmp_path: Path) -> None:
    """``berth --demo`` seeds through the bundled registry; the storage view (QtCharts)
    is built with the window."""
    demo = run_app([str(bundle / "berth")], "--demo", env=env, cwd=tmp_path)
    assert demo.registry_command == str(bundle / "berth-registry")
    assert workspaces(demo) >= 3


def test_app_keeps_its_password_in_the_secret_service(bundle: Path, tmp_path: Path) -> None:
    """A real Secret Service: GNOME Keyring on a private D-Bus session bus."""
    env = private_env(tmp_path / "home")
    del env["PYTHON_KEYRING_BACKEND"]
    script = (
        f"printf unlock | {require('gnome-keyring-daemon')} --unlock --components=secrets"
        f' >/dev/null && exec {bundle / "berth"} "$@"'
    )
    result = run_app(
        [require("dbus-run-session"), "--", "sh", "-c", script, "sh"], env=env, cwd=tmp_path
    )
    secret_service = result.line("keyring keyring.backends.SecretService.Keyring")
    assert secret_service is not None, result.lines
    data = tmp_path / "home/.local/share/berth/registry"
    assert (data / "registry.db").is_file()
    assert not (data / "berth-credentials.json").exists(), "the password went to a file"
