"""The desktop launcher and the AppStream metainfo pass their validators, agree
with each other and with the app (id, icon, version, screenshots), and install
into a tree that validates as a whole."""

from __future__ import annotations

import configparser
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from app import __version__
from app.ui.app_icon import DESKTOP_ID
from tests.support.tools import require

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "resources"
DESKTOP = RESOURCES / f"{DESKTOP_ID}.desktop"
METAINFO = RESOURCES / f"{DESKTOP_ID}.metainfo.xml"


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )


def _desktop_file_ok(path: Path) -> None:
    result = _run(require("desktop-file-validate"), str(path))
    assert result.returncode == 0, result
    assert not (result.stdout + result.stderr).strip(), result


def _appstream_ok(result: subprocess.CompletedProcess[str]) -> None:
    # Only the pedantic hint about the capital letters of the reverse-DNS id may
    # remain: io.berth.Berth follows the usual Organisation.App spelling.
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Validation was successful" in output, output
    for level in ("E:", "W:", "I:"):
        assert level not in output, output


def test_desktop_file_validates() -> None:
    _desktop_file_ok(DESKTOP)


def test_metainfo_validates_offline() -> None:
    _appstream_ok(_run(require("appstreamcli"), "validate", "--no-net", str(METAINFO)))


def test_launcher_and_metainfo_agree_with_the_app() -> None:
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.read(DESKTOP)
    entry = desktop["Desktop Entry"]
    assert entry["Exec"] == "berth"
    assert entry["Icon"] == DESKTOP_ID

    component = ET.parse(METAINFO).getroot()
    assert component.findtext("id") == DESKTOP_ID
    assert component.findtext("launchable") == DESKTOP.name
    assert component.findtext("icon") == DESKTOP_ID
    assert {b.text for b in component.iter("binary")} == {"berth", "berth-registry"}
    releases = component.findall("releases/release")
    assert releases[0].get("version") == __version__, "the newest release comes first"
    # Every screenshot is published from resources/screenshots under its own name.
    urls = [image.text or "" for image in component.iter("image")]
    assert urls
    for url in urls:
        assert (RESOURCES / "screenshots" / url.rsplit("/", 1)[-1]).is_file(), url


def test_installed_tree_validates(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = _run(
        str(ROOT / "packaging/install-desktop-files.sh"),
        str(root),
        "/usr",
        env={"BERTH_EXEC": "/opt/berth/berth"},
    )
    assert result.returncode == 0, result.stderr
    share = root / "usr/share"
    installed = share / "applications" / DESKTOP.name
    assert "Exec=/opt/berth/berth\n" in installed.read_text()
    _desktop_file_ok(installed)
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        assert (share / f"icons/hicolor/{size}x{size}/apps/{DESKTOP_ID}.png").is_file()
    assert (share / f"icons/hicolor/scalable/apps/{DESKTOP_ID}.svg").is_file()
    _appstream_ok(_run(require("appstreamcli"), "validate-tree", "--no-net", str(root)))
