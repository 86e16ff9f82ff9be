"""Entry point of the PyInstaller bundle: one executable, two programs.

The bundle holds one executable, ``berth``, and a symbolic link to it,
``berth-registry``; the name it was started under picks the program. The desktop
app starts its embedded registry through that link, so the bundle runs its own
registry and never one from PATH (``app.client.embedded.BUNDLED_EXECUTABLE``).
"""

from __future__ import annotations

import sys
from pathlib import Path

REGISTRY = "berth-registry"


def main() -> int:
    if Path(sys.argv[0]).name.startswith(REGISTRY):
        from app.registry.cli import main as registry_main

        return registry_main()

    from app.client import embedded

    embedded.BUNDLED_EXECUTABLE = Path(sys.executable).with_name(REGISTRY)
    from app.ui.main import main as app_main

    return app_main()


if __name__ == "__main__":
    sys.exit(main())
