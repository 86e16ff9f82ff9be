"""The connection dialog for the "OCI registry" kind: "Test connection" against a
real Distribution over TLS (with the CA bundle, without it, a wrong password),
the plain-HTTP warning outside localhost, and names added by hand kept when the
profile is edited."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from app.client.credentials import CredentialStore
from app.client.profiles import Profile
from app.ui.connections.dialog import ConnectionsDialog, check_connection
from tests.support import oci
from tests.support.distribution import PASSWORD, USER, DistributionServer, push_image
from tests.support.keyrings import MemoryKeyring

pytestmark = pytest.mark.e2e


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[DistributionServer]:
    server = DistributionServer(tmp_path / "dist").start()
    try:
        with server.http_client() as http:
            img = oci.image([oci.random_layer(2_000, "conn")])
            push_image(http, "team/app", img, "v1")
            push_image(http, "team/app", img, "latest")
        yield server
    finally:
        server.stop()


def answer(qtbot: QtBot, profile: Profile, secret: str | None) -> tuple[bool, str]:
    task = asyncio.get_event_loop().create_task(check_connection(profile, secret))
    qtbot.waitUntil(task.done, timeout=20_000)
    return task.result()


def test_test_connection_for_an_oci_registry(
    distribution: DistributionServer, qtbot: QtBot, qt_loop: Any
) -> None:
    ca = str(distribution.ca_file)
    ok, text = answer(
        qtbot, Profile("d", distribution.url, USER, kind="oci", ca_bundle=ca), PASSWORD
    )
    assert ok, text
    assert f"as {USER}; 1 repository visible." in text
    assert "only by digest" in text  # the capability notes, found while testing

    ok, text = answer(qtbot, Profile("d", distribution.url, USER, kind="oci"), PASSWORD)
    assert not ok
    assert text.startswith("TLS failed.")
    assert "not trusted" in text

    ok, text = answer(
        qtbot, Profile("d", distribution.url, USER, kind="oci", ca_bundle=ca), "wrong"
    )
    assert not ok
    assert "rejected the credentials (401)" in text


def test_plain_http_warned_outside_localhost_and_names_kept(
    qtbot: QtBot, qt_loop: Any, memory_keyring: MemoryKeyring
) -> None:
    remembered = Profile(
        "dist", "https://registry.example:5000", "ci", kind="oci", repositories=("team/app",)
    )
    dialog = ConnectionsDialog([remembered], CredentialStore(backend=memory_keyring), "dist")
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.kind.currentData() == "oci"
    assert dialog.http_warning.isHidden()
    assert dialog.verify.isEnabled()

    dialog.url.setText("http://registry.example:5000")
    assert not dialog.http_warning.isHidden()
    assert "unencrypted" in dialog.http_warning.text()
    assert not dialog.verify.isEnabled()
    assert not dialog.ca_bundle.isEnabled()
    for local in ("http://localhost:5000", "http://127.0.0.1:5000", "http://[::1]:5000"):
        dialog.url.setText(local)
        assert dialog.http_warning.isHidden(), local

    # Editing the profile keeps the names added by hand in the window.
    dialog.name.setText("dist (local)")
    edited = dialog.form_profile()
    assert edited.kind == "oci"
    assert edited.repositories == ("team/app",)
    dialog.reject()
