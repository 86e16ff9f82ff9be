"""The embedded local registry: ``berth-registry serve`` as a child process.

With no saved connection the desktop app runs its own registry so it works out of
the box: data in the user data directory (``platformdirs``), a free port on
127.0.0.1, and a superuser whose password is generated on first start and kept in
the keyring (or, with no keyring, a 0600 file beside the data — the user is told).

The child is started with ``--port 0`` and is ready when it prints
``listening on URL``. It is stopped with SIGTERM (a clean shutdown), killed if it
does not go; on Linux it also gets SIGTERM if the app dies first, so no registry is
left running behind a crashed app.

The demo (``--demo``) is seeded while it already serves: ``berth-registry demo``
creates the accounts and workspaces first and says so, the registry starts then,
and the seeding goes on beside it (``seeding`` is its progress) while the window
shows what has landed. A demo whose seeding was cut short (the app closed) is
seeded anew on the next start. ``stop`` also ends a start still under way.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import platformdirs

from app.client.credentials import CredentialStore, KeyringUnavailable, SecretFile
from app.client.profiles import Profile

APP_NAME = "berth"
ADMIN_USER = "berth-admin"
EXECUTABLE = "berth-registry"
READY_PREFIX = "listening on "
# A fresh embedded registry gets one place to push to: local/images/<name>.
FIRST_WORKSPACE, FIRST_PROJECT, FIRST_REPOSITORY = "local", "LOCAL", "images"
# Demo data wants GC to be visible within a minute, not after the defaults.
DEMO_GC_ARGS = ("--gc-review-delay", "5", "--gc-upload-grace", "30")
# What ``berth-registry demo`` says (app.registry.demo): its database is made (the
# server may start), its accounts exist (we may log in), how far the history is; and
# the file it writes last, once it is done.
DEMO_DATABASE_READY = "demo: database ready"
DEMO_ACCOUNTS_READY = "demo: accounts ready"
DEMO_PROGRESS = "demo: seeding "
DEMO_DONE_FILE = "demo-credentials.txt"


class EmbeddedError(Exception):
    """The embedded registry could not be set up or started; the message says why."""


STOPPED_WHILE_STARTING = "The embedded registry was stopped while it started."


class State(Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"  # could not start, or exited on its own


def default_data_dir(*, demo: bool = False) -> Path:
    base = platformdirs.user_data_path(APP_NAME, appauthor=False)
    return base / ("demo-registry" if demo else "registry")


# Packagers (a frozen bundle, a Flatpak) set this to where they put the executable.
BUNDLED_EXECUTABLE: Path | None = None


def locate_registry(bundled: Path | None = None) -> list[str]:
    """The command that runs ``berth-registry``.

    In order: ``$BERTH_REGISTRY``, a bundled executable, the one installed beside
    the running Python (a venv's bin/), then ``$PATH``; failing all of those, the
    module run by this interpreter (same code, always there in a source checkout).
    """
    env = os.environ.get("BERTH_REGISTRY")
    if env:
        return [env]
    bundled = bundled or BUNDLED_EXECUTABLE
    if bundled is not None and bundled.exists():
        return [str(bundled)]
    beside = Path(sys.executable).parent / EXECUTABLE
    if beside.exists():
        return [str(beside)]
    found = shutil.which(EXECUTABLE)
    if found:
        return [found]
    return [sys.executable, "-m", "app.registry.cli"]


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str
    where: str  # "keyring" or the path of the fallback file, for the status line


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # PR_SET_PDEATHSIG: the kernel sends SIGTERM to the registry if the app dies.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class EmbeddedRegistry:
    """Set up, start and stop one local registry. ``start``/``stop`` block; the UI
    calls them through ``asyncio.to_thread``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        store: CredentialStore | None = None,
        demo: bool = False,
        command: Sequence[str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.store = store or CredentialStore()
        self.demo = demo
        self.command = list(command or locate_registry())
        self.extra_args = list(extra_args)
        self.state = State.STOPPED
        self.url: str | None = None
        self.credentials: Credentials | None = None
        self.error: str | None = None
        self.keyring_warning: str | None = None
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        # The demo's seeding: per cent done while it runs beside the server, else None.
        self.seeding: int | None = None
        self.seed_error: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        # stop() may come from another thread while start() runs: the children it
        # starts are registered under this lock, and none is started after a stop.
        self._lock = threading.Lock()
        self._stopping = False
        self._setup: subprocess.Popen[str] | None = None  # a set-up command running
        self._seeder: subprocess.Popen[str] | None = None
        self._seed_reader: threading.Thread | None = None
        self._accounts: threading.Event | None = None  # set when the demo's exist
        self._made_accounts = False
        self.on_state: Callable[[State], None] = lambda _state: None

    # --- set-up -----------------------------------------------------------------
    @property
    def account(self) -> str:
        return f"embedded:{self.data_dir}"

    @property
    def secret_file(self) -> SecretFile:
        return SecretFile(self.data_dir / "berth-credentials.json")

    def _spawn(self, args: Sequence[str], stdout: int, stderr: int) -> subprocess.Popen[str]:
        """A child ``berth-registry`` (call with the lock held); refused once a stop
        came, so nothing is left running behind a window that closed."""
        if self._stopping:
            raise EmbeddedError(STOPPED_WHILE_STARTING)
        return subprocess.Popen(
            [*self.command, *args],
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            text=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    def _run(self, *args: str, stdin: str | None = None) -> str:
        with self._lock:
            proc = self._setup = self._spawn(
                [*args, "--data", str(self.data_dir)], subprocess.PIPE, subprocess.PIPE
            )
        try:
            out, err = proc.communicate(stdin)
        finally:
            with self._lock:
                self._setup = None
        if self._stopping:
            raise EmbeddedError(STOPPED_WHILE_STARTING)
        if proc.returncode != 0:
            message = (err or out).strip().splitlines()
            raise EmbeddedError(
                f"berth-registry {args[0]} failed: {message[-1] if message else proc.returncode}"
            )
        return out

    # --- the demo's seeding -----------------------------------------------------
    def _start_seeding(self, password: str) -> None:
        """Start ``berth-registry demo`` and return once its database is made (the
        server may start on it while the accounts are made); a thread follows the
        rest of its work (``seeding``) until it exits."""
        with self._lock:
            proc = self._seeder = self._spawn(
                ["demo", "--data", str(self.data_dir), "--admin-user", ADMIN_USER,
                 "--password-stdin"],
                subprocess.PIPE, subprocess.STDOUT,
            )  # fmt: skip
        assert proc.stdin is not None
        with contextlib.suppress(OSError):  # it may have failed already
            proc.stdin.write(password + "\n")
            proc.stdin.close()
        database = threading.Event()
        self._accounts = threading.Event()
        self.seeding = 0
        self.seed_error = None
        self._seed_reader = threading.Thread(
            target=self._follow_seeding,
            args=(proc, database, self._accounts),
            name="demo-seeding",
            daemon=True,
        )
        self._seed_reader.start()
        database.wait()
        self._check_seeding()

    def _check_seeding(self) -> None:
        if self.seeding is None and not self._made_accounts:  # it ended before them
            raise EmbeddedError(self.seed_error or STOPPED_WHILE_STARTING)

    def _follow_seeding(
        self, proc: subprocess.Popen[str], database: threading.Event, accounts: threading.Event
    ) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            if line == DEMO_DATABASE_READY:
                database.set()
            elif line == DEMO_ACCOUNTS_READY:
                self._made_accounts = True
                accounts.set()
            elif line.startswith(DEMO_PROGRESS) and line.endswith("%"):
                with contextlib.suppress(ValueError):
                    self.seeding = int(line[len(DEMO_PROGRESS) : -1])
                    self.on_state(self.state)
        proc.stdout.close()
        status = proc.wait()
        with self._lock:
            if self._seeder is proc:
                self._seeder = None
        if status != 0 and not self._stopping:
            last = next((x for x in reversed(self.output) if x.strip()), f"status {status}")
            self.seed_error = f"Seeding the demo failed: {last}"
        self.seeding = None
        database.set()
        accounts.set()
        self.on_state(self.state)

    def _load_credentials(self) -> Credentials | None:
        try:
            password = self.store.get(self.account)
        except KeyringUnavailable as exc:
            self.keyring_warning = str(exc)
            password = None
        if password:
            return Credentials(ADMIN_USER, password, "keyring")
        data = self.secret_file.read()
        if data and data.get("password"):
            return Credentials(
                data.get("username", ADMIN_USER), data["password"], str(self.secret_file.path)
            )
        return None

    def _save_credentials(self, password: str) -> Credentials:
        try:
            self.store.set(self.account, password)
            self.secret_file.delete()
            return Credentials(ADMIN_USER, password, "keyring")
        except KeyringUnavailable as exc:
            self.keyring_warning = (
                f"{exc} The embedded registry's password is kept in "
                f"{self.secret_file.path} (readable only by you)."
            )
            self.secret_file.write({"username": ADMIN_USER, "password": password})
            return Credentials(ADMIN_USER, password, str(self.secret_file.path))

    def prepare(self) -> Credentials:
        """Create the data directory, the admin user and (demo) sample data on first
        start; afterwards only load the credentials. A demo's seeding goes on after
        this returns (see ``_start_seeding``)."""
        if self.demo and not (self.data_dir / DEMO_DONE_FILE).exists():
            # Never seeded, or cut short (demo throws that away and starts again).
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            password = secrets.token_urlsafe(24)
            self._start_seeding(password)
            return self._save_credentials(password)
        fresh = not (self.data_dir / "registry.db").exists()
        credentials = None if fresh else self._load_credentials()
        if credentials is not None:
            return credentials
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = secrets.token_urlsafe(24)
        if fresh:
            # Only init, serve and demo make a registry; the other commands refuse a
            # directory that holds none.
            self._run("demo" if self.demo else "init")
            self._run("user", "add", ADMIN_USER, "--password-stdin", "--superuser", stdin=password)
            if not self.demo:
                self._run("workspace", "add", FIRST_WORKSPACE, "--name", "Local")
                self._run("project", "add", FIRST_WORKSPACE, FIRST_PROJECT, "--name", "Local")
                self._run(
                    "repository", "add", FIRST_WORKSPACE, FIRST_REPOSITORY,
                    "--project", FIRST_PROJECT,
                )  # fmt: skip
        else:
            # The data survived but its password did not (keyring reset): set a new one.
            self._run("user", "passwd", ADMIN_USER, "--password-stdin", stdin=password)
        return self._save_credentials(password)

    # --- running ----------------------------------------------------------------
    def _set_state(self, state: State) -> None:
        self.state = state
        self.on_state(state)

    def _read_output(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            if line.startswith(READY_PREFIX) and not self._ready.is_set():
                self.url = line[len(READY_PREFIX) :].strip()
                self._ready.set()
        proc.stdout.close()
        self._ready.set()  # exited: wake start() so it can report the failure
        if self.state is State.RUNNING:
            self.error = "The embedded registry exited: " + (
                self.output[-1] if self.output else f"status {proc.poll()}"
            )
            self._set_state(State.FAILED)

    def start(self, timeout: float = 60.0) -> Profile:
        """Start the registry and return the profile to connect with."""
        if self.state is State.RUNNING and self.credentials is not None:
            return self.profile()
        self._set_state(State.STARTING)
        try:
            self.credentials = self.prepare()
            args = [
                "serve", "--data", str(self.data_dir), "--host", "127.0.0.1", "--port", "0",
                *(DEMO_GC_ARGS if self.demo else ()), *self.extra_args,
            ]  # fmt: skip
            self._ready.clear()
            with self._lock:
                self._proc = self._spawn(args, subprocess.PIPE, subprocess.STDOUT)
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._reader = threading.Thread(
                target=self._read_output, args=(self._proc,), name="embedded-registry", daemon=True
            )
            self._reader.start()
            if not self._ready.wait(timeout) or self.url is None:
                last = self.output[-1] if self.output else "no output"
                self.stop()
                raise EmbeddedError(f"The embedded registry did not start: {last}")
            if self._accounts is not None:  # the demo makes them beside the server
                self._accounts.wait()
                self._check_seeding()
        except (EmbeddedError, OSError) as exc:
            self.error = str(exc)
            self._set_state(State.FAILED)
            if isinstance(exc, OSError):
                raise EmbeddedError(f"The embedded registry cannot be run: {exc}") from exc
            raise
        self.error = None
        self._set_state(State.RUNNING)
        return self.profile()

    def profile(self) -> Profile:
        if self.url is None or self.credentials is None:
            raise EmbeddedError("The embedded registry is not running.")
        return Profile(
            name="Demo registry" if self.demo else "Local registry",
            url=self.url,
            username=self.credentials.username,
            kind="berth",
            embedded=True,
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the registry, and a start or a demo seeding under way (from any thread:
        a start running in another one starts nothing more and fails). Once stopped,
        this object starts nothing again: make a new one to start again."""
        with self._lock:
            self._stopping = True
            proc, self._proc = self._proc, None
            helpers = [p for p in (self._setup, self._seeder) if p is not None]
        for helper in helpers:
            _end(helper, timeout)
        if self._seed_reader is not None:
            self._seed_reader.join(5)
        self.url = None
        if proc is not None:
            if proc.poll() is None:
                if self.state is State.RUNNING:
                    self.state = State.STOPPED  # an exit we asked for is not a failure
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            if self._reader is not None:
                self._reader.join(5)
        if self.state is not State.FAILED:
            self._set_state(State.STOPPED)


def _end(proc: subprocess.Popen[str], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it does not go within ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
