"""Abandoned uploads cannot pile up unseen: open sessions are limited per user and
per workspace (429 TOOMANYREQUESTS past the limit), their bytes show in the storage
figures, deleting an image removes its sessions' data at once, and upload data
whose session is gone is found and removed by fsck --repair and by the
housekeeping of a serving registry."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.registry.oci_helpers import assert_error, sha256, upload
from tests.support import oci
from tests.support.api import api
from tests.support.registry import CLI, RegistryServer

Factory = Callable[..., RegistryServer]
NAME = "acme/web/app"


def wait_for(what: str, done: Callable[[], bool]) -> None:
    """Poll for a background effect (the bound only keeps a broken build from hanging)."""
    deadline = time.monotonic() + 120
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def open_upload(c: httpx.Client, name: str = NAME, data: bytes = b"") -> str:
    r = c.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code == 202, r.text
    location: str = r.headers["location"]
    if data:
        assert c.patch(location, content=data).status_code == 202
    return location


def fsck(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "fsck", "--data", str(data), *args], capture_output=True, text=True, check=False
    )


def test_open_uploads_are_limited_per_user_and_per_workspace(registry_factory: Factory) -> None:
    server = registry_factory(
        extra_args=["--max-uploads-per-user", "3", "--max-uploads-per-workspace", "5"]
    )
    with server.client("root") as root:
        base = upload(root, "acme/web/base", b"a layer to mount")
    with server.client("writer") as writer, server.client("admin") as admin:
        first = [open_upload(writer) for _ in range(3)]
        r = writer.post(f"/v2/{NAME}/blobs/uploads/")
        assert_error(r, 429, "TOOMANYREQUESTS")
        assert r.json()["errors"][0]["detail"] == {"limit": 3, "per": "user"}
        data = b"one request"
        r = writer.post(f"/v2/{NAME}/blobs/uploads/", params={"digest": sha256(data)}, content=data)
        assert_error(r, 429, "TOOMANYREQUESTS")
        # A mount opens no session, so it is never refused for the limit.
        r = writer.post(
            f"/v2/{NAME}/blobs/uploads/", params={"mount": base, "from": "acme/web/base"}
        )
        assert r.status_code == 201, r.text
        # Ending one frees its place.
        assert writer.delete(first[0]).status_code == 204
        open_upload(writer)
        # The workspace holds five at most, whoever opened them.
        open_upload(admin)
        open_upload(admin)
        r = admin.post(f"/v2/{NAME}/blobs/uploads/")
        assert_error(r, 429, "TOOMANYREQUESTS")
        assert r.json()["errors"][0]["detail"] == {"limit": 5, "per": "workspace"}
    with server.client("outsider") as outsider:
        open_upload(outsider, "globex/tools/cli")


def test_open_uploads_show_in_the_storage_figures(registry: RegistryServer) -> None:
    with registry.client("writer") as writer:
        kept = open_upload(writer, data=b"k" * 1000)
        cancelled = open_upload(writer, data=b"c" * 500)
        with api(registry) as c:
            figures = c.get("/workspaces/acme/storage").json()
            assert (figures["uploading"], figures["upload_count"]) == (1500, 2)
            overview = c.get("/workspaces/acme/storage/overview").json()["storage"]
            assert (overview["uploading"], overview["upload_count"]) == (1500, 2)
            other = c.get("/workspaces/globex/storage").json()
            assert (other["uploading"], other["upload_count"]) == (0, 0)
            assert writer.delete(cancelled).status_code == 204
            figures = c.get("/workspaces/acme/storage").json()
            assert (figures["uploading"], figures["upload_count"]) == (1000, 1)
            assert writer.put(kept, params={"digest": sha256(b"k" * 1000)}).status_code == 201
            figures = c.get("/workspaces/acme/storage").json()
            assert (figures["uploading"], figures["upload_count"]) == (0, 0)
            assert figures["stored"] == 1000


def test_deleting_an_image_removes_its_upload_data(registry: RegistryServer) -> None:
    with registry.client("writer") as writer:
        oci.push(writer, NAME, oci.image([oci.layer({"x": b"x"})]), "v1")
        locations = [open_upload(writer, data=os.urandom(2000)) for _ in range(3)]
    files = [registry.data / "uploads" / loc.rsplit("/", 1)[1] for loc in locations]
    assert all(f.is_file() for f in files)
    with api(registry) as c:
        images = c.get("/workspaces/acme/images").json()["items"]
        (image_id,) = [i["id"] for i in images if i["full_name"] == NAME]
        r = c.delete(f"/images/{image_id}", headers={"If-Match": "*"})
        assert r.status_code == 204, r.text
    assert [f for f in files if f.exists()] == []
    with registry.client("writer") as writer:
        for loc in locations:
            assert_error(writer.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    result = fsck(registry.data, "--orphan-min-age", "0")
    assert result.returncode == 0, result.stdout


def _orphan(data: Path, size: int, age_s: float) -> Path:
    path = data / "uploads" / str(uuid.uuid4())
    path.write_bytes(b"\0" * size)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_fsck_finds_and_removes_upload_data_without_a_session(registry: RegistryServer) -> None:
    with registry.client("writer") as writer:
        live = open_upload(writer, data=b"live" * 100)
    registry.stop()
    old = _orphan(registry.data, 4096, 3600)
    young = _orphan(registry.data, 10, 0)
    found = fsck(registry.data)
    assert found.returncode == 4, found.stdout
    problems = [line for line in found.stdout.splitlines() if line.startswith("orphan:")]
    assert problems == [f"orphan: upload data {old} (4096 bytes) has no upload session"]
    assert any(
        line.startswith(f"note: young orphan upload {young}") for line in found.stdout.splitlines()
    )
    repaired = fsck(registry.data, "--repair")
    assert repaired.returncode == 1, repaired.stdout
    assert not old.exists()
    assert young.exists()
    live_file = registry.data / "uploads" / live.rsplit("/", 1)[1]
    assert live_file.stat().st_size == 400
    clean = fsck(registry.data)
    assert clean.returncode == 0, clean.stdout


def test_housekeeping_removes_upload_data_without_a_session(registry: RegistryServer) -> None:
    with registry.client("writer") as writer:
        live = open_upload(writer, data=b"live" * 100)
    registry.stop()
    old = _orphan(registry.data, 4096, 3600)
    young = _orphan(registry.data, 10, 0)
    registry.start()  # the housekeeping runs at start, then every minute
    wait_for("the old orphan removed", lambda: not old.exists())
    assert young.exists()  # may still be written into: left for a later round
    with registry.client("writer") as writer:
        assert writer.get(live).status_code == 204
        assert writer.put(live, params={"digest": sha256(b"live" * 100)}).status_code == 201
