"""``berth``: the desktop app's entry point.

With no saved connection (or with ``--demo``) it starts the embedded registry and
connects to it; otherwise it reconnects to the last connection used. SIGTERM and
SIGINT close the window as its close button does (app/ui/quit_signals.py); the exit
status is then 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import __version__

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="berth", description="Berth: a desktop console for container registries."
    )
    parser.add_argument("--version", action="version", version=f"berth {__version__}")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run a separate embedded registry seeded with sample workspaces and images",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="connect to the embedded local registry even when connections are saved",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="data directory of the embedded registry (default: "
        "the user data directory)",
    )  # fmt: skip
    parser.add_argument(
        "--smoke-test", action="store_true", help="show the window, connect, then quit: "
        "for packaging checks (see app/ui/smoke.py; exit status 1 if anything failed)",
    )  # fmt: skip
    return parser


def connect_on_start(
    window: MainWindow, *, demo: bool = False, embedded: bool = False, data_dir: Path | None = None
) -> asyncio.Task[Any]:
    """What the window connects to when the app starts: the last connection used, or
    (with none saved, or asked for) the embedded registry."""
    from app.client.embedded import EmbeddedRegistry, default_data_dir

    settings = window.settings
    profiles = settings.profiles()
    if demo or embedded or data_dir or not profiles:
        where = data_dir or default_data_dir(demo=demo)
        return window.use_embedded(EmbeddedRegistry(where, store=window.store, demo=demo))
    last = settings.last_profile()
    profile = next((p for p in profiles if p.name == last), profiles[0])
    return window.open_profile(profile)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Qt is imported only now: --version and --help answer without loading it.
    import qasync
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.client.credentials import CredentialStore
    from app.ui.app_icon import DESKTOP_ID, app_icon
    from app.ui.common import exception_dialog
    from app.ui.common.settings import Settings
    from app.ui.main_window import MainWindow
    from app.ui.quit_signals import QuitOnSignals

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setOrganizationName("berth")
    app.setApplicationName("Berth")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(DESKTOP_ID)
    app.setWindowIcon(app_icon())
    exception_dialog.install()

    # The demo keeps its own settings, so it never replaces the real last connection.
    settings = Settings(QSettings("berth", "Berth-demo")) if args.demo else Settings()
    store = CredentialStore()
    window = MainWindow(settings, store)
    # From here on, SIGTERM and SIGINT close the window as its close button does.
    signals = QuitOnSignals(window)
    smoke = None
    if args.smoke_test:
        from app.ui.smoke import SmokeTest

        smoke = SmokeTest(window)
    window.show()

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    quitting = asyncio.Event()
    app.aboutToQuit.connect(quitting.set)

    connecting = connect_on_start(
        window, demo=args.demo, embedded=args.embedded, data_dir=args.data_dir
    )
    if smoke is not None:
        smoke.watch(connecting)

    with loop:
        loop.run_until_complete(quitting.wait())
    signals.uninstall()
    if signals.received is not None:
        return signals.exit_status
    return smoke.exit_status if smoke is not None else 0


if __name__ == "__main__":
    sys.exit(main())
