"""The embedded registry: first start creates credentials, restarts reuse them,
stop leaves no child behind, and without a keyring the password goes to a 0600 file."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import keyring.backends.fail
import pytest

from app.client.credentials import CredentialStore
from app.client.embedded import ADMIN_USER, EmbeddedError, EmbeddedRegistry, State, locate_registry
from tests.support.keyrings import MemoryKeyring
from tests.support.processes import children_of


def _v2_status(url: str, user: str, password: str) -> int:
    with httpx.Client(base_url=url, auth=httpx.BasicAuth(user, password), timeout=10) as c:
        return c.get("/v2/").status_code


def test_start_stop_and_restart_with_keyring(tmp_path: Path) -> None:
    ring = MemoryKeyring()
    reg = EmbeddedRegistry(tmp_path / "data", store=CredentialStore(backend=ring))
    states: list[State] = []
    reg.on_state = states.append
    profile = reg.start()
    try:
        assert reg.state is State.RUNNING
        assert reg.pid in children_of(os.getpid())
        assert profile.embedded
        assert profile.username == ADMIN_USER
        assert reg.credentials is not None
        assert reg.credentials.where == "keyring"
        password = reg.credentials.password
        assert ring.secrets[("berth", reg.account)] == password
        assert not reg.secret_file.path.exists()
        assert _v2_status(profile.url, ADMIN_USER, password) == 200
        assert _v2_status(profile.url, ADMIN_USER, "wrong-password") == 401
    finally:
        reg.stop()
    assert reg.state is State.STOPPED
    assert not reg.alive()
    assert states[:2] == [State.STARTING, State.RUNNING]

    # A second start reuses the data and the stored password.
    again = EmbeddedRegistry(tmp_path / "data", store=CredentialStore(backend=ring))
    profile = again.start()
    try:
        assert again.credentials is not None
        assert again.credentials.password == password
        assert _v2_status(profile.url, ADMIN_USER, password) == 200
    finally:
        again.stop()


def test_without_keyring_the_password_goes_to_a_private_file(tmp_path: Path) -> None:
    store = CredentialStore(backend=keyring.backends.fail.Keyring())
    assert not store.available
    reg = EmbeddedRegistry(tmp_path / "data", store=store)
    profile = reg.start()
    try:
        assert reg.keyring_warning is not None
        assert "keyring" in reg.keyring_warning
        path = reg.secret_file.path
        assert reg.credentials is not None
        assert reg.credentials.where == str(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert _v2_status(profile.url, ADMIN_USER, reg.credentials.password) == 200
    finally:
        reg.stop()


def test_lost_keyring_entry_gets_a_new_password(tmp_path: Path) -> None:
    ring = MemoryKeyring()
    reg = EmbeddedRegistry(tmp_path / "data", store=CredentialStore(backend=ring))
    reg.prepare()
    ring.secrets.clear()
    profile = reg.start()
    try:
        assert reg.credentials is not None
        assert _v2_status(profile.url, ADMIN_USER, reg.credentials.password) == 200
    finally:
        reg.stop()


def test_a_registry_that_cannot_start_reports_why(tmp_path: Path) -> None:
    ring = MemoryKeyring()
    reg = EmbeddedRegistry(
        tmp_path / "data",
        store=CredentialStore(backend=ring),
        extra_args=["--tls-cert", str(tmp_path / "missing.pem")],
    )
    with pytest.raises(EmbeddedError, match="did not start"):
        reg.start()
    assert reg.state is State.FAILED
    assert not reg.alive()


def test_locate_prefers_the_environment_then_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BERTH_REGISTRY", "/opt/berth/berth-registry")
    assert locate_registry() == ["/opt/berth/berth-registry"]
    monkeypatch.delenv("BERTH_REGISTRY")
    bundled = tmp_path / "berth-registry"
    bundled.write_text("")
    assert locate_registry(bundled) == [str(bundled)]
    assert locate_registry()[0].endswith("berth-registry")


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _wait(check: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.1)


def test_the_demo_serves_while_it_is_seeded(tmp_path: Path) -> None:
    """A first demo start returns once the registry serves the demo's workspaces; the
    history lands meanwhile (``seeding`` climbs, then None), and a start afterwards
    serves the finished demo without seeding again."""
    ring = MemoryKeyring()
    reg = EmbeddedRegistry(tmp_path / "demo", store=CredentialStore(backend=ring), demo=True)
    seen: list[int | None] = []
    reg.on_state = lambda _state: seen.append(reg.seeding)
    profile = reg.start()
    try:
        assert reg.seeding is not None  # served before the history is in
        assert reg.credentials is not None
        auth = httpx.BasicAuth(ADMIN_USER, reg.credentials.password)
        with httpx.Client(base_url=profile.url + "/api/v1", auth=auth, timeout=30) as c:
            names = [w["slug"] for w in c.get("/workspaces").json()["items"]]
            assert names == ["acme", "globex", "initech"]
            _wait(lambda: reg.seeding is None, "the seeding to finish")
            assert reg.seed_error is None
            images = c.get("/workspaces/acme/images", params={"limit": 1000}).json()["items"]
            assert len(images) > 10
        assert 100 in seen
        assert seen[-1] is None
        assert (tmp_path / "demo" / "demo-credentials.txt").exists()
    finally:
        reg.stop()
    again = EmbeddedRegistry(tmp_path / "demo", store=CredentialStore(backend=ring), demo=True)
    again.start()
    try:
        assert again.seeding is None
        assert not [c for c in children_of(os.getpid()) if "demo" in _argv(c)]
    finally:
        again.stop()


def test_stop_ends_a_demo_seeding_and_a_start_under_way(tmp_path: Path) -> None:
    """The window closing while the demo is seeded, or even while it starts (another
    thread), leaves no process behind; the next start seeds the demo anew."""
    ring = MemoryKeyring()
    reg = EmbeddedRegistry(tmp_path / "demo", store=CredentialStore(backend=ring), demo=True)
    failed: list[BaseException] = []

    def start() -> None:
        try:
            reg.start()
        except EmbeddedError as exc:
            failed.append(exc)

    starting = threading.Thread(target=start)
    starting.start()
    _wait(
        lambda: any("demo" in _argv(c) for c in children_of(os.getpid())),
        "the demo's seeding to start",
    )
    reg.stop()
    starting.join(120)
    assert not starting.is_alive()
    mine = [c for c in children_of(os.getpid()) if "berth-registry" in " ".join(_argv(c))]
    assert mine == []
    assert reg.seeding is None
    # Either the start was cut short, or it had finished and the registry is stopped.
    assert failed or reg.state is State.STOPPED
    again = EmbeddedRegistry(tmp_path / "demo", store=CredentialStore(backend=ring), demo=True)
    again.start()
    try:
        _wait(lambda: again.seeding is None, "the new seeding to finish")
        assert again.seed_error is None
        assert (tmp_path / "demo" / "demo-credentials.txt").exists()
    finally:
        again.stop()
