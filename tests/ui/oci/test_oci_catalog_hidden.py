"""An OCI registry whose catalog is hidden, over plain HTTP on localhost: a real
CNCF Distribution behind a small proxy process that answers 404 for
``/v2/_catalog`` (as registries with the catalog turned off do). The window says
so in its banner, the admin adds repository names by hand, the tree and tables
show them, capabilities are probed once a name is known, and the profile
remembers the names for the next connection."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from app.client.profiles import Profile
from app.ui.backends.oci import OciBackend
from app.ui.connections.dialog import plain_http_warning
from app.ui.oci import repositories_dialog as oci_repositories_dialog
from app.ui.oci.repositories_dialog import parse_names
from tests.support import oci
from tests.support.distribution import PASSWORD, USER, DistributionServer, push_image
from tests.support.processes import ServerProcess
from tests.ui.conftest import WindowFactory, wait_idle

pytestmark = pytest.mark.e2e

# Forwards everything to the registry except the catalog; plain HTTP on 127.0.0.1.
PROXY = r"""
import http.server, socketserver, sys, httpx
upstream, ca = sys.argv[1], sys.argv[2]
client = httpx.Client(base_url=upstream, verify=ca, timeout=30)
HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length",
       "host", "accept-encoding"}

class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def forward(self):
        if self.path.split("?")[0] == "/v2/_catalog":
            body = b'{"errors":[{"code":"NOT_FOUND","message":"catalog disabled"}]}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        r = client.request(self.command, self.path, headers=headers, content=data)
        me = f"http://{self.headers['Host']}"
        self.send_response(r.status_code)
        for k, v in r.headers.multi_items():
            if k.lower() in HOP:
                continue
            self.send_header(k, v.replace(upstream, me))
        size = r.headers.get("content-length") if self.command == "HEAD" else None
        self.send_header("Content-Length", size or str(len(r.content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(r.content)
    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = forward

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

server = Server(("127.0.0.1", 0), Proxy)
print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
"""

IMG = oci.image([oci.random_layer(20_000, "hidden-base"), oci.random_layer(3_000, "hidden")])


@pytest.fixture
def hidden_catalog(tmp_path: Path) -> Iterator[str]:
    server = DistributionServer(tmp_path / "dist").start()
    proxy: ServerProcess | None = None
    try:
        with server.http_client() as http:
            push_image(http, "team/app", IMG, "v1")
            push_image(http, "team/app", IMG, "latest")
            push_image(http, "team/worker", IMG, "1.0")
        proxy = ServerProcess([sys.executable, "-c", PROXY, server.url, str(server.ca_file)])
        yield proxy.url
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()


def test_names_added_by_hand_when_the_catalog_is_hidden(
    hidden_catalog: str,
    make_window: WindowFactory,
    qtbot: QtBot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = hidden_catalog
    assert plain_http_warning(url) is None  # plain HTTP to this machine: fine
    profile = Profile("hidden", url, USER, kind="oci")
    window = make_window()
    window.settings.set_profiles([profile])
    window.open_profile(profile, PASSWORD)
    wait_idle(qtbot, window)
    backend = window.backend
    assert isinstance(backend, OciBackend), window.error_bar.text
    root = window.navigator.nav_model.root.children[0]
    assert root.count == 0
    banner = window.oci.banner
    assert banner.isVisible()
    assert "add repository names by hand" in banner.label.text()
    assert banner.add_button.isVisible()
    assert window.oci.status.text() == "OCI registry: no catalog · deletes: not known yet"

    asked: list[tuple[Any, ...]] = []

    async def names(*args: Any) -> list[str]:
        asked.append(args)
        return ["team/app", "team/worker"]

    monkeypatch.setattr(oci_repositories_dialog, "ask_repository_names", names)
    banner.add_button.click()
    wait_idle(qtbot, window)
    assert asked[0][3] is False  # the dialog is told the catalog is off
    root = window.navigator.nav_model.root.children[0]
    assert root.count == 2
    assert [c.name for c in root.children] == ["team"]
    # With a name known, deletes were probed (once) and the notes say how they work.
    assert "deletes by digest only" in window.oci.status.text()
    assert "only by digest" in banner.label.text()

    assert window.navigator.select_path((root.name, "team"))
    qtbot.waitUntil(lambda: window.browse.images_model.rowCount() == 2)
    wait_idle(qtbot, window)
    counts = {i.full_name: i.tag_count for i in window.browse.images_model.rows}
    assert counts == {"team/app": 2, "team/worker": 1}

    # The profile remembers them: the next connection lists them at once.
    saved = window.settings.profiles()
    assert saved[0].repositories == ("team/app", "team/worker")
    window.open_profile(saved[0], PASSWORD)
    wait_idle(qtbot, window)
    assert window.navigator.nav_model.root.children[0].count == 2


def test_names_typed_are_checked() -> None:
    assert parse_names(" team/app \n\nlibrary/nginx/\nteam/app\n") == (
        ["team/app", "library/nginx"],
        [],
    )
    names, problems = parse_names("Team/App\nok/name")
    assert names == ["ok/name"]
    assert len(problems) == 1
    assert "Team" in problems[0]
