"""``berth-registry demo`` seeds a registry worth exploring, and the numbers the
issue asks for hold when a real server serves it."""

from __future__ import annotations

import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.registry.db import schema as s
from tests.support.gc_checks import Metadata
from tests.support.registry import CLI, RegistryServer, admin

pytestmark = pytest.mark.slow

PASSWORD = "demo-password-1"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data = tmp_path_factory.mktemp("demo") / "data"
    result = subprocess.run(
        [CLI, "demo", "--data", str(data), "--admin-user", "boss", "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return data, result.stdout


@pytest.fixture(scope="module")
def server(seeded: tuple[Path, str]) -> Iterator[RegistryServer]:
    server = RegistryServer(seeded[0]).start()
    try:
        yield server
    finally:
        server.stop()


def api(server: RegistryServer, user: str = "boss", password: str = PASSWORD) -> httpx.Client:
    return httpx.Client(
        base_url=server.url + "/api/v1", auth=httpx.BasicAuth(user, password), timeout=60
    )


def every(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = client.get(path, params={**params, "cursor": cursor, "limit": 1000}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def passwords(data: Path) -> dict[str, str]:
    lines = (data / "demo-credentials.txt").read_text().splitlines()
    return {line.split()[0]: line.split()[1] for line in lines if line and not line.startswith("#")}


def test_credentials_are_printed_and_kept_private(seeded: tuple[Path, str]) -> None:
    data, stdout = seeded
    creds = passwords(data)
    assert creds["boss"] == PASSWORD
    assert {"alice", "bob", "carol", "dave", "erin", "frank"} <= set(creds)
    assert stat.S_IMODE((data / "demo-credentials.txt").stat().st_mode) == 0o600
    for user, password in creds.items():
        assert f"{user}" in stdout
        assert password in stdout


def test_the_seeded_store_is_consistent_and_small(seeded: tuple[Path, str]) -> None:
    data = seeded[0]
    result = admin(data, "fsck")
    assert result.returncode == 0, result.stdout + result.stderr
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    assert size < 150 * 1024 * 1024


def test_the_demo_has_the_promised_shape(server: RegistryServer) -> None:
    with api(server) as c:
        workspaces = every(c, "/workspaces")
        assert len(workspaces) >= 3
        assert sum(w["project_count"] for w in workspaces) >= 5
        assert sum(w["repository_count"] for w in workspaces) >= 10
        images = [i for w in workspaces for i in every(c, f"/workspaces/{w['slug']}/images")]
        assert len(images) >= 40
        assert sum(i["tag_count"] for i in images) >= 600
        assert any("/" in i["name"] for i in images)  # image names with a path
        pushes = sorted(i["last_push"] for i in images)
        assert pushes[0][:7] != pushes[-1][:7]  # pushes spread over months
        acme = c.get("/workspaces/acme/storage").json()
        assert acme["shared"] > 0
        assert acme["pending"] > 0  # deleted and overwritten tags wait for GC
        assert acme["logical"] > 2 * acme["referenced"]  # base layers shared widely
        widely = c.get("/workspaces/acme/storage/shared-layers").json()["items"]
        assert max(layer["image_count"] for layer in widely) >= 8
        gc = c.get("/workspaces/acme/gc").json()
        assert gc["queued_blobs"] + gc["queued_manifests"] > 0
        history = c.get("/workspaces/acme/storage/history").json()
        assert len(history["samples"]) >= 60
        assert sum(run["bytes_freed"] for run in history["gc_runs"]) > 0
        audit = c.get("/workspaces/acme/audit").json()["items"]
        assert {"tag.delete", "image.delete"} <= {e["action"] for e in audit}


def test_multi_arch_and_referrers(server: RegistryServer) -> None:
    with api(server) as c:
        gateway = next(
            i for i in every(c, "/workspaces/acme/images") if i["full_name"] == "acme/api/gateway"
        )
        tags = every(c, f"/images/{gateway['id']}/tags", sort="-pushed_at")
        latest = next(t for t in tags if t["name"] == "latest")
        assert latest["media_type"] == "application/vnd.oci.image.index.v1+json"
        assert latest["platforms"] == ["linux/amd64", "linux/arm64"]
        detail = c.get(f"/images/{gateway['id']}/manifests/{latest['digest']}").json()
        assert len(detail["manifests"]) == 2
        assert {r["artifact_type"] for r in detail["referrers"]} == {
            "application/spdx+json",
            "application/vnd.dev.cosign.artifact.sig.v1+json",
        }


def test_users_hold_each_permission_level(server: RegistryServer, seeded: tuple[Path, str]) -> None:
    creds = passwords(seeded[0])
    with api(server) as c:
        frontend = next(
            i
            for i in every(c, "/workspaces/acme/images")
            if i["full_name"] == "acme/web-app/frontend"
        )
    expected = {"alice": "admin", "bob": "write", "carol": "read", "dave": "admin"}
    for user, permission in expected.items():
        with api(server, user, creds[user]) as c:
            repos = {r["slug"]: r["permission"] for r in every(c, "/workspaces/acme/repositories")}
            assert repos.get("web-app" if user != "dave" else "auth") == permission, user
    with api(server, "carol", creds["carol"]) as c:
        r = c.delete(
            f"/images/{frontend['id']}/tags/latest", headers={"If-Match": frontend["etag"]}
        )
        assert r.status_code == 403
        assert r.json()["error"]["detail"] == {"required": "write", "repository": "acme/web-app"}
    with api(server, "erin", creds["erin"]) as c:
        assert [w["role"] for w in every(c, "/workspaces")] == ["guest"]


def test_seeding_again_is_a_no_op_and_other_data_is_refused(
    seeded: tuple[Path, str], tmp_path: Path
) -> None:
    data = seeded[0]
    again = admin(data, "demo")
    assert again.returncode == 0
    assert "already holds the demo" in again.stdout
    other = tmp_path / "other"
    assert admin(other, "init").returncode == 0
    assert admin(other, "workspace", "add", "mine").returncode == 0
    refused = admin(other, "demo")
    assert refused.returncode == 2
    assert "already holds a registry" in refused.stderr
    short = admin(tmp_path / "fresh", "demo", "--password-stdin", password="short")
    assert short.returncode == 2
    assert "at least 8 characters" in short.stderr


class Seeding:
    """``berth-registry demo`` running, its stdout lines read as they come."""

    def __init__(self, data: Path) -> None:
        self.proc = subprocess.Popen(
            [CLI, "demo", "--data", str(data), "--admin-user", "boss", "--password-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(PASSWORD + "\n")
        self.proc.stdin.close()
        self.lines: list[str] = []

    def until(self, line: str) -> None:
        assert self.proc.stdout is not None
        for got in self.proc.stdout:
            self.lines.append(got.rstrip("\n"))
            if got.rstrip("\n") == line:
                return
        raise AssertionError(f"demo ended without saying {line!r}: {self.lines[-5:]}")

    def finish(self) -> int:
        assert self.proc.stdout is not None
        self.lines += self.proc.stdout.read().splitlines()
        status = self.proc.wait(600)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return status


def test_a_server_started_beside_the_seeding_holds_gc(tmp_path: Path) -> None:
    """The desktop app starts the registry as soon as the demo's database exists and
    shows the demo as it lands. The server's GC, on its own clock, would find the
    whole history past its grace: while the seeding runs it neither collects nor
    samples, and "run GC now" says why. Every run and sample is then the story's."""
    data = tmp_path / "data"
    began = int(time.time() * 1000)
    seeding = Seeding(data)
    server: RegistryServer | None = None
    try:
        seeding.until("demo: database ready")
        server = RegistryServer(data, review_delay=1, upload_grace=1).start()
        seeding.until("demo: seeding 10 %")
        with api(server) as c:
            refused = c.post("/workspaces/acme/gc/run")
            assert refused.status_code == 409, refused.text
            assert "garbage collection is held" in refused.json()["error"]["message"]
        seeding.until("demo: seeding 60 %")  # the worker had many passes meanwhile
        server.stop()
        assert seeding.finish() == 0, seeding.lines[-5:]
    finally:
        if seeding.proc.poll() is None:
            seeding.proc.kill()
            seeding.finish()
        if server is not None:
            server.stop()
    # Read from the store itself: a server started now would collect what the story
    # left due (as it may, once the seeding is done).
    with Metadata(data) as meta, meta.db.read() as conn:
        runs = conn.execute(select(s.gc_runs.c.started_at)).scalars().all()
        samples = conn.execute(select(s.storage_samples.c.at)).scalars().all()
    assert runs
    assert samples
    assert [at for at in runs if at >= began] == []
    assert [at for at in samples if at >= began] == []
    fsck = admin(data, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_a_seeding_cut_short_is_seeded_anew(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cut = Seeding(data)
    cut.until("demo: seeding 10 %")
    cut.proc.send_signal(signal.SIGTERM)  # the app closed meanwhile
    assert cut.finish() != 0
    assert not (data / "demo-credentials.txt").exists()
    again = Seeding(data)
    assert again.finish() == 0, again.lines[-5:]
    assert f"{data} holds a demo whose seeding was cut short: seeding it again" in again.lines
    assert (data / "demo-credentials.txt").exists()
    fsck = admin(data, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    server = RegistryServer(data).start()
    try:
        with api(server) as c:
            names = sorted(w["slug"] for w in every(c, "/workspaces"))
            assert c.get("/workspaces/acme/gc").json()["recent_runs"]
    finally:
        server.stop()
    assert names == ["acme", "globex", "initech"]
