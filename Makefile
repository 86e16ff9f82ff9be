# Berth: everyday commands. `make run` and `make test` set up what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Debian packages the tests and the app need on a fresh machine.
DEB_PACKAGES := skopeo umoci docker-registry xvfb xauth dbus dbus-x11 gnome-keyring \
	libegl1 libgl1 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 libdbus-1-3 \
	libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xkb1 \
	libxcb-cursor0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 fonts-dejavu-core \
	desktop-file-utils appstream imagemagick openssl postgresql systemd binutils \
	at-spi2-core python3-pyatspi xdotool haproxy

.PHONY: run demo test check deps venv clean screenshots bundle bundle-check

run: venv
	$(VENV)/bin/berth --demo

test: deps venv check
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

check: venv
	$(VENV)/bin/ruff check app tests
	$(VENV)/bin/ruff format --check app tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Renders the desktop app's main window, delete confirmation and connection dialog,
# the storage and OCI views, the cleanup policies tab and its confirmation, and the
# Recently deleted tab with the status bar's Undo.
screenshots: venv
	xvfb-run -a $(PY) -m tests.support.screenshots resources/screenshots
	xvfb-run -a $(PY) -m tests.support.policy_screenshots resources/screenshots
	xvfb-run -a $(PY) -m tests.support.trash_screenshots resources/screenshots

# The one-folder desktop bundle (PyInstaller, its own build venv): packaging/dist/berth.
# The suite builds and checks one of its own (tests/packaging/test_bundle.py);
# bundle-check runs those checks on packaging/dist/berth.
bundle:
	packaging/build-bundle.sh

bundle-check: deps venv
	packaging/smoke-bundle.sh

# Installs only what is missing (needs root, or sudo).
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

clean:
	rm -rf $(VENV) build dist *.egg-info packaging/build packaging/dist
