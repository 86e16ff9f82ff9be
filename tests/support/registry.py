"""A real ``berth-registry serve`` process over real HTTP, with seeded accounts."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import Connection

from app.core.permissions import Permission
from app.registry import accounts
from app.registry.service import Registry
from tests.support.processes import VENV_BIN, ServerProcess

CLI = str(VENV_BIN / "berth-registry")
PASSWORD = "correct-horse-battery"


def admin(data: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run an administrative ``berth-registry`` command against ``data``."""
    return subprocess.run(
        [CLI, *args, "--data", str(data)],
        input=(password + "\n") if password is not None else None,
        capture_output=True,
        text=True,
        check=False,
    )


def admin_ok(data: Path, *args: str, password: str | None = None) -> str:
    result = admin(data, *args, password=password)
    if result.returncode != 0:
        raise AssertionError(f"berth-registry {' '.join(args)} failed: {result.stderr}")
    return result.stdout


@dataclass
class RegistryServer:
    data: Path
    review_delay: float = 300.0
    upload_grace: float = 3600.0
    # The trash is off unless a test asks for it (None: serve's own default, 7 days):
    # most tests are about what a delete leaves to the GC.
    trash_retention: float | None = 0.0
    extra_args: list[str] = field(default_factory=list)
    database_url: str | None = None  # default: SQLite in data
    blob_store: str | None = None  # default: the data directory
    env: dict[str, str] = field(default_factory=dict)  # e.g. the AWS environment
    log_file: Path | None = None  # stderr to this file instead of a pipe
    process: ServerProcess | None = None

    def start(self) -> RegistryServer:
        self.process = ServerProcess(
            [
                CLI,
                "serve",
                "--data",
                str(self.data),
                "--port",
                "0",
                "--gc-review-delay",
                str(self.review_delay),
                "--gc-upload-grace",
                str(self.upload_grace),
                *(
                    ["--trash-retention", str(self.trash_retention)]
                    if self.trash_retention is not None
                    else []
                ),
                *(["--database-url", self.database_url] if self.database_url else []),
                *(["--blob-store", self.blob_store] if self.blob_store else []),
                *self.extra_args,
            ],
            env=self.env,
            log_file=self.log_file,
        )
        return self

    @property
    def url(self) -> str:
        assert self.process is not None
        return self.process.url

    @property
    def host(self) -> str:
        """host:port, as skopeo and docker want it."""
        return self.url.split("://", 1)[1]

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(
        self, user: str | None = None, password: str = PASSWORD, **kw: object
    ) -> httpx.Client:
        auth = httpx.BasicAuth(user, password) if user else None
        return httpx.Client(base_url=self.url, auth=auth, timeout=30, **kw)  # type: ignore[arg-type]

    # seeding (in-process, one transaction each: the CLI has its own tests) ------
    def seed(self, fn: Callable[[Connection], object]) -> None:
        reg = Registry.open(self.data, database_url=self.database_url)
        try:
            with reg.db.write() as conn:
                fn(conn)
        finally:
            reg.close()

    def user(self, name: str, *, superuser: bool = False, password: str = PASSWORD) -> None:
        self.seed(lambda c: accounts.add_user(c, name, password, superuser=superuser))

    def workspace(self, slug: str) -> None:
        self.seed(lambda c: accounts.add_workspace(c, slug))

    def member(self, workspace: str, user: str, *, admin_: bool = False) -> None:
        self.seed(lambda c: accounts.add_member(c, workspace, user, admin=admin_))

    def project(self, workspace: str, key: str) -> None:
        self.seed(lambda c: accounts.add_project(c, workspace, key))

    def repository(self, workspace: str, slug: str, project: str) -> None:
        self.seed(lambda c: accounts.add_repository(c, workspace, slug, project))

    def grant(self, repo: str, user: str, permission: str) -> None:
        ws, slug = repo.split("/")
        self.seed(lambda c: accounts.grant(c, ws, slug, user, Permission.parse(permission)))


def standard_registry(data: Path, **kw: object) -> RegistryServer:
    """Workspace ``acme`` (project PLAT, repositories ``web`` and ``api``) and
    ``globex`` (project OPS, repository ``tools``), with users:

    - ``root``: superuser
    - ``wsadmin``: admin of acme
    - ``admin``/``writer``/``reader``: admin/write/read on acme/web
    - ``outsider``: member of globex with admin on globex/tools
    """
    server = RegistryServer(data, **kw)  # type: ignore[arg-type]

    def seed(c: Connection) -> None:
        for ws, key, repos in (("acme", "PLAT", ("web", "api")), ("globex", "OPS", ("tools",))):
            accounts.add_workspace(c, ws)
            accounts.add_project(c, ws, key)
            for repo in repos:
                accounts.add_repository(c, ws, repo, key)
        accounts.add_user(c, "root", PASSWORD, superuser=True)
        for name in ("wsadmin", "admin", "writer", "reader", "outsider"):
            accounts.add_user(c, name, PASSWORD)
        accounts.add_member(c, "acme", "wsadmin", admin=True)
        for name in ("admin", "writer", "reader"):
            accounts.add_member(c, "acme", name)
        accounts.grant(c, "acme", "web", "admin", Permission.ADMIN)
        accounts.grant(c, "acme", "web", "writer", Permission.WRITE)
        accounts.grant(c, "acme", "web", "reader", Permission.READ)
        accounts.add_member(c, "globex", "outsider")
        accounts.grant(c, "globex", "tools", "outsider", Permission.ADMIN)

    server.seed(seed)
    return server
