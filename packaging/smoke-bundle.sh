#!/usr/bin/env bash
# Smoke-test an existing desktop bundle with the checks CI runs on the bundle it
# builds (tests/packaging/test_bundle.py): versions, the registry on SQLite and
# PostgreSQL, the app offscreen with its embedded registry, a real Secret Service
# keyring. Needs the dev venv and Debian packages (make venv deps).
#
#   packaging/smoke-bundle.sh [pytest options]       # bundle: packaging/dist/berth
#   BERTH_BUNDLE=/opt/berth packaging/smoke-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export BERTH_BUNDLE="${BERTH_BUNDLE:-packaging/dist/berth}"
exec "${VENV:-.venv}/bin/python" -m pytest tests/packaging/test_bundle.py "$@"
