#!/usr/bin/env bash
# Build the desktop bundle: packaging/dist/berth/, one folder holding `berth` (the
# desktop app) and `berth-registry` (a link to the same executable), plus share/
# with the launcher, AppStream metadata and icons.
#
#   git clone <berth> berth && cd berth && packaging/build-bundle.sh
#
# Needs Python 3.11+ built with a shared libpython (Debian's python3 is) and PyPI.
# The build venv (packaging/build/venv) is made on first use and kept; the wheel
# is built first and installed into it, so the bundle holds exactly the package
# data the wheel ships. Takes several minutes on 2 cores.
#   PYTHON=python3.12   interpreter for the build venv (default: python3)
#   BUNDLE_VENV=DIR     build venv (default: packaging/build/venv; an existing one
#                       is reused, e.g. a venv the wheel is installed in already)
set -euo pipefail
cd "$(dirname "$0")/.."
work=packaging/build
dist=packaging/dist
venv="${BUNDLE_VENV:-$work/venv}"

[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
venv="$(cd "$venv" && pwd)"
"$venv/bin/python" -m pip install -q build
rm -rf "$work/wheel"
"$venv/bin/python" -m build -q --wheel --outdir "$work/wheel" . >/dev/null 2>&1 ||
    "$venv/bin/python" -m build --wheel --outdir "$work/wheel" .  # again, to show why
wheel="$(ls "$work"/wheel/berth-*.whl)"
# Dependencies (with PostgreSQL support and PyInstaller), then this very wheel.
"$venv/bin/python" -m pip install -q "$wheel[postgres,bundle]"
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"

rm -rf "$dist/berth"
(cd packaging && "$venv/bin/pyinstaller" --noconfirm --log-level WARN \
    --distpath dist --workpath build/pyinstaller berth.spec)
ln -s berth "$dist/berth/berth-registry"
packaging/install-desktop-files.sh "$dist/berth" ""

version="$("$dist/berth/berth" --version)"
echo "built $dist/berth ($version, $(du -sh "$dist/berth" | cut -f1))"
