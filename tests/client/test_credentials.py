"""Secrets: the keyring store with a memory backend, no keyring at all, the 0600
fallback file, and one round trip through the real Secret Service (GNOME Keyring
on a private D-Bus session, in a subprocess)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import keyring.backends.fail
import pytest

from app.client.credentials import SERVICE, CredentialStore, KeyringUnavailable, SecretFile
from app.client.profiles import Profile
from tests.support.keyrings import MemoryKeyring
from tests.support.tools import require


def test_memory_backend_round_trip() -> None:
    ring = MemoryKeyring()
    store = CredentialStore(backend=ring)
    assert store.available
    profile = Profile("prod", "https://registry.example/", "alice")
    assert store.get(profile.secret_account) is None
    store.set(profile.secret_account, "s3cret")
    assert ring.secrets[(SERVICE, "alice@https://registry.example")] == "s3cret"
    assert store.get(profile.secret_account) == "s3cret"
    store.delete(profile.secret_account)
    store.delete(profile.secret_account)  # deleting what is gone is fine
    assert store.get(profile.secret_account) is None


def test_no_keyring_is_reported() -> None:
    store = CredentialStore(backend=keyring.backends.fail.Keyring())
    assert not store.available
    assert store.unavailable_reason is not None
    assert "no system keyring" in store.unavailable_reason
    with pytest.raises(KeyringUnavailable, match="No system keyring"):
        store.set("a@b", "secret")
    with pytest.raises(KeyringUnavailable):
        store.get("a@b")


def test_secret_file_is_private(tmp_path: Path) -> None:
    f = SecretFile(tmp_path / "sub" / "creds.json")
    assert f.read() is None
    f.write({"username": "u", "password": "p"})
    assert stat.S_IMODE(f.path.stat().st_mode) == 0o600
    assert f.read() == {"username": "u", "password": "p"}
    f.delete()
    assert not f.path.exists()


SCRIPT = textwrap.dedent(
    """
    import os, subprocess, sys
    # Unlock a fresh login keyring for this private session (password on stdin).
    out = subprocess.run(
        ["gnome-keyring-daemon", "--unlock", "--components=secrets"],
        input=b"test-keyring-password\\n", capture_output=True, check=True,
    ).stdout.decode()
    for line in out.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            os.environ[k] = v
    import keyring
    from keyring.backends import SecretService
    keyring.set_keyring(SecretService.Keyring())
    from app.client.credentials import CredentialStore
    store = CredentialStore()
    assert store.available, store.unavailable_reason
    store.set("alice@https://registry.example", "from-secret-service")
    assert store.get("alice@https://registry.example") == "from-secret-service"
    store.delete("alice@https://registry.example")
    assert store.get("alice@https://registry.example") is None
    print("secret-service-ok")
    """
)


def test_real_secret_service(tmp_path: Path) -> None:
    dbus_run_session = require("dbus-run-session")
    require("gnome-keyring-daemon")
    env = {
        **os.environ,
        "HOME": str(tmp_path),  # the keyring files go to a private home
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
    }
    (tmp_path / "run").mkdir(mode=0o700)
    script = tmp_path / "secret_service.py"
    script.write_text(SCRIPT)
    # dbus-run-session ends the session bus and gnome-keyring with it when the
    # script exits, so nothing is left running.
    result = subprocess.run(
        [dbus_run_session, "--", sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert "secret-service-ok" in result.stdout
