"""Render the Cleanup policies tab and its *Run now…* confirmation to PNGs, against
a real registry seeded over HTTP (a policy saved, one run in the history, a few
tags pulled, two one-off exceptions chosen).

    xvfb-run -a .venv/bin/python -m tests.support.policy_screenshots resources/screenshots
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from PySide6.QtCore import QSize

from app.client.credentials import CredentialStore
from app.client.profiles import Profile
from app.core.cleanup import Rule
from app.ui.common.settings import Settings
from app.ui.main_window import MainWindow
from app.ui.policies.confirm import ConfirmRunDialog
from tests.support import oci
from tests.support.keyrings import MemoryKeyring
from tests.support.registry import PASSWORD, RegistryServer, standard_registry
from tests.support.screenshots import close_window, grab, render_all, until

RULES = (
    Rule.make("keep_last", 3),
    Rule.make("keep_regex", r"^v\d+\.\d+\.0$"),
    Rule.make("remove_older_than", 0),
)


def seed(server: RegistryServer) -> None:
    from tests.ui.seed import seed_image

    base = oci.random_layer(400_000, seed="policy-base")
    seed_image(server, "acme/web/frontend",
               [f"v2.{m}.{p}" for m in range(3) for p in range(4)] + ["latest"],
               variants=13, shared=base, layer_size=80_000)  # fmt: skip
    seed_image(server, "acme/web/admin-console", [f"build-{i}" for i in range(8)], variants=8,
               shared=base)  # fmt: skip
    with server.client("root") as client:
        for ref in ("frontend:v2.2.3", "frontend:latest", "admin-console:build-7"):
            name, tag = ref.split(":")
            r = client.get(f"/v2/acme/web/{name}/manifests/{tag}",
                           headers={"Accept": oci.OCI_MANIFEST})  # fmt: skip
            assert r.status_code == 200, r.text


async def render(out: Path, tmp: Path) -> None:
    store = CredentialStore(backend=MemoryKeyring())
    window = MainWindow(Settings.at(tmp / "settings.ini"), store)
    window.resize(QSize(1400, 860))
    window.show()
    server = standard_registry(
        tmp / "registry", extra_args=["--pull-flush-interval", "1"], trash_retention=None
    )  # the trash on, as serve has it by default
    server.start()
    try:
        await asyncio.to_thread(seed, server)
        window.open_profile(Profile("Demo", server.url, "root"), PASSWORD)
        await until(lambda: window.backend is not None and not window.ops.busy)
        api = window.policies.api
        assert api is not None
        # An earlier run of a narrower policy, for the history.
        await api.cleanup.set_policy("acme", "web", (Rule.make("keep_last", 6),
                                     Rule.make("remove_older_than", 0)))  # fmt: skip
        first = await api.cleanup.preview("acme", "web")
        run = await api.cleanup.run_preview(first.id)
        while run.running:
            await asyncio.sleep(0.2)
            run = await api.cleanup.run(run.id)
        await api.cleanup.set_policy("acme", "web", RULES, 86_400)
        await asyncio.sleep(1.5)  # the pulls are written every second
        await window.navigator.reveal(("acme", "PLAT", "web"))
        window.navigator.select_path(("acme", "PLAT", "web"))
        window.views.setCurrentWidget(window.policies)
        view = window.policies
        await until(lambda: view.preview is not None and not window.ops.busy)
        tags = view.tags
        go = [
            (t.image_id, t.tag)
            for t in view.tags_model.rows
            if t.remove and t.image.endswith("frontend")
        ][:2]
        tags.select_keys(go)
        view.keep_selected()
        await asyncio.sleep(0.3)
        grab(window, out / "cleanup-policies.png")

        assert view.preview is not None
        figures, _keep = await view._figures(api, view.scope, view.preview)  # type: ignore[arg-type]
        dialog = ConfirmRunDialog(figures, window)
        dialog.show()
        await asyncio.sleep(0.3)
        grab(dialog, out / "cleanup-run-confirmation.png")
        dialog.reject()
    finally:
        await close_window(window)
        server.stop()


def main(argv: list[str]) -> int:
    return render_all(argv, render)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
