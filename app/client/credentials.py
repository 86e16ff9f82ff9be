"""Secrets in the system keyring, and nowhere else.

Passwords and tokens are stored with :mod:`keyring` (Secret Service on Linux,
Keychain on macOS, Credential Locker on Windows) under the service name
:data:`SERVICE`. Nothing here logs a secret or writes one to a settings file.

When no keyring backend is usable, :class:`CredentialStore` says so
(:attr:`~CredentialStore.unavailable_reason`) and the UI asks for the password
each time. The one exception is the embedded registry's own generated admin
password, which may fall back to :class:`SecretFile`, a 0600 file beside that
registry's data (the data is the user's own, in their data directory).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

SERVICE = "berth"


class KeyringUnavailable(Exception):
    """No usable keyring: the secret cannot be stored (or read) there."""


_NO_KEYRING = (
    "no system keyring is available (install and unlock a Secret Service "
    "such as GNOME Keyring or KWallet)"
)


def _backend_problem(backend: KeyringBackend) -> str | None:
    module = type(backend).__module__
    name = type(backend).__name__
    if module.startswith("keyring.backends.fail") or module.startswith("keyring.backends.null"):
        return _NO_KEYRING
    if module.startswith("keyring.backends.chainer") and not getattr(backend, "backends", None):
        return _NO_KEYRING
    try:
        priority = float(type(backend).priority)
    except Exception as exc:
        return f"the keyring {name} cannot be used ({exc})"
    if priority <= 0:
        return f"the keyring {name} is not usable here"
    return None


class CredentialStore:
    """Get, set and delete secrets for keyring accounts (see
    :attr:`app.client.profiles.Profile.secret_account`)."""

    def __init__(self, service: str = SERVICE, backend: KeyringBackend | None = None) -> None:
        self.service = service
        self._backend = backend

    @property
    def backend(self) -> KeyringBackend:
        return self._backend or keyring.get_keyring()

    @property
    def unavailable_reason(self) -> str | None:
        """None when secrets can be stored; otherwise a sentence saying why not."""
        return _backend_problem(self.backend)

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None

    def _check(self) -> KeyringBackend:
        reason = self.unavailable_reason
        if reason is not None:
            raise KeyringUnavailable(reason[0].upper() + reason[1:] + ".")
        return self.backend

    def get(self, account: str) -> str | None:
        backend = self._check()
        try:
            return backend.get_password(self.service, account)
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailable(f"The keyring could not be read ({exc}).") from exc

    def set(self, account: str, secret: str) -> None:
        backend = self._check()
        try:
            backend.set_password(self.service, account, secret)
        except keyring.errors.KeyringError as exc:
            raise KeyringUnavailable(f"The keyring refused to store the secret ({exc}).") from exc

    def delete(self, account: str) -> None:
        backend = self._check()
        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            backend.delete_password(self.service, account)


class SecretFile:
    """A JSON file readable only by its owner, for the embedded registry's
    generated credentials when there is no keyring."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, str] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        return {str(k): str(v) for k, v in data.items()}

    def write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 from the start (never world-readable, not even briefly).
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.chmod(self.path, 0o600)

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
