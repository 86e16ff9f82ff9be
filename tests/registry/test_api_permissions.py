"""Every management endpoint against every kind of caller: read, write and admin on
acme/web, workspace admin of acme, a user of another workspace (globex), and root.

What a caller may not see answers 404 (no existence leaks); what it sees but may not
do answers 403 naming the missing permission.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import oci
from tests.support.api import Content, api, as_listed, push_content
from tests.support.registry import PASSWORD, RegistryServer, standard_registry

USERS = ("reader", "writer", "admin", "wsadmin", "outsider", "root")


@dataclass
class World:
    server: RegistryServer
    content: Content
    serial: Iterator[int]

    @property
    def frontend(self) -> int:
        return self.content.ids["acme/web/frontend"]

    def fresh_tag(self) -> str:
        """A new tag on acme/web/frontend, for a caller to delete."""
        tag = f"t{next(self.serial)}"
        with self.server.client("root") as c:
            oci.push(c, "acme/web/frontend", self.content.tagged["acme/web/frontend"]["v1"], tag)
        return tag

    def fresh_image(self) -> int:
        name = f"victim{next(self.serial)}"
        with self.server.client("root") as c:
            oci.push(c, f"acme/web/{name}", self.content.tagged["acme/web/backend"]["v1"], "v1")
        with api(self.server) as c:
            return int(
                c.get("/workspaces/acme/images", params={"q": name}).json()["items"][0]["id"]
            )

    def etag(self, image_id: int) -> dict[str, str]:
        """The If-Match a delete through ``image_id`` sends (read as root: the
        callers under test may not be able to read the image)."""
        with api(self.server) as c:
            return as_listed(c, image_id)

    def policy(self, repository: str | None = None) -> str:
        """Make sure the policy exists (rules that remove nothing); returns its path."""
        path = "/workspaces/acme" + (f"/repositories/{repository}" if repository else "")
        with api(self.server) as c:
            r = c.put(path + "/policy", json={"rules": KEEP_ALL})
            assert r.status_code == 200, r.text
        return path + "/policy"

    def preview(self) -> int:
        """A new preview of the workspace policy (made by root)."""
        with api(self.server) as c:
            r = c.post(self.policy() + "/previews")
            assert r.status_code == 201, r.text
            return int(r.json()["id"])

    def idle(self) -> None:
        """Wait until no cleanup run of acme is going (one scope runs once at a time)."""
        with api(self.server) as c:
            deadline = time.monotonic() + 60
            while any(
                run["state"] == "running"
                for run in c.get("/workspaces/acme/policy-runs").json()["items"]
            ):
                assert time.monotonic() < deadline
                time.sleep(0.05)

    def trashed_tag(self) -> int:
        """A tag of acme/web/frontend deleted into the trash (by root): its entry id."""
        tag = self.fresh_tag()
        with api(self.server) as c:
            r = c.delete(f"/images/{self.frontend}/tags/{tag}", headers=self.etag(self.frontend))
            assert r.status_code == 204, r.text
            return self.entry(c, "tag", tag)

    def trashed_image(self) -> int:
        """An image of acme/web deleted into the trash (by root): its entry id."""
        image_id = self.fresh_image()
        with api(self.server) as c:
            assert c.delete(f"/images/{image_id}", headers=self.etag(image_id)).status_code == 204
            return self.entry(c, "image", None, image_id)

    @staticmethod
    def entry(c: httpx.Client, kind: str, tag: str | None, image_id: int | None = None) -> int:
        params: dict[str, object] = {"kind": kind, "limit": 1000}
        if image_id is not None:
            params["image_id"] = image_id
        items = c.get("/workspaces/acme/trash", params=params).json()["items"]
        return int(next(x["id"] for x in items if x["tag"] == tag))

    def fresh_member(self) -> str:
        with api(self.server) as c:
            name = f"member{next(self.serial)}"
            assert c.post("/users", json={"name": name, "password": PASSWORD}).status_code == 201
            assert (
                c.put(f"/workspaces/acme/members/{name}", json={"admin": False}).status_code == 200
            )
        return name


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = standard_registry(
        Path(tmp_path_factory.mktemp("permissions")) / "r", trash_retention=3600
    ).start()
    try:
        content = push_content(server)
        with api(server) as c:
            assert c.post("/users", json={"name": "neo", "password": PASSWORD}).status_code == 201
        yield World(server, content, itertools.count())
    finally:
        server.stop()


Call = Callable[[httpx.Client, World], httpx.Response]
KEEP_ALL = [{"kind": "keep_last", "value": 1000}]


def _stream_status(c: httpx.Client, w: World) -> httpx.Response:
    with c.stream("GET", "/workspaces/acme/events") as r:
        if r.status_code != 200:
            r.read()
        return r  # an open stream is closed on leaving the block


READ = {"reader": 200, "writer": 200, "admin": 200, "wsadmin": 200, "outsider": 404, "root": 200}
DELETE_TAG = {**READ, "reader": 403, "writer": 204, "admin": 204, "wsadmin": 204, "root": 204}
BULK = {**READ, "reader": 403}
DELETE_IMAGE = {**DELETE_TAG, "writer": 403}
WS_ADMIN = {
    "reader": 403,
    "writer": 403,
    "admin": 403,
    "wsadmin": 200,
    "outsider": 404,
    "root": 200,
}
WS_ADMIN_204 = {u: (204 if s == 200 else s) for u, s in WS_ADMIN.items()}
WS_ADMIN_201 = {u: (201 if s == 200 else s) for u, s in WS_ADMIN.items()}
WS_ADMIN_202 = {u: (202 if s == 200 else s) for u, s in WS_ADMIN.items()}
REPO_ADMIN = {**WS_ADMIN, "admin": 200}
REPO_ADMIN_201 = {u: (201 if s == 200 else s) for u, s in REPO_ADMIN.items()}
REPO_ADMIN_202 = {u: (202 if s == 200 else s) for u, s in REPO_ADMIN.items()}
REPO_ADMIN_204 = {u: (204 if s == 200 else s) for u, s in REPO_ADMIN.items()}
EVERYONE = dict.fromkeys(USERS, 200)
SUPERUSER_201 = {**dict.fromkeys(USERS, 403), "root": 201}


def _run_preview(c: httpx.Client, w: World) -> httpx.Response:
    preview = w.preview()
    w.idle()
    return c.post(f"/policy-previews/{preview}/runs")


def _run_saved(path: str) -> Call:
    def call(c: httpx.Client, w: World) -> httpx.Response:
        w.policy("web" if "repositories" in path else None)
        w.idle()
        return c.post(path)

    return call


def _read_run(c: httpx.Client, w: World) -> httpx.Response:
    path = w.policy() + "/runs"
    w.idle()
    with api(w.server) as root:
        r = root.post(path)
        assert r.status_code == 202, r.text
    return c.get(f"/policy-runs/{r.json()['id']}")


CASES: dict[str, tuple[Call, dict[str, int], str | None]] = {
    # name: (request, status per user, permission a 403 must name)
    "me": (lambda c, w: c.get("/me"), EVERYONE, None),
    "workspaces": (lambda c, w: c.get("/workspaces"), EVERYONE, None),
    "workspace": (lambda c, w: c.get("/workspaces/acme"), READ, None),
    "projects": (lambda c, w: c.get("/workspaces/acme/projects"), READ, None),
    "repositories": (lambda c, w: c.get("/workspaces/acme/repositories"), READ, None),
    "images": (lambda c, w: c.get("/workspaces/acme/images"), READ, None),
    "image": (lambda c, w: c.get(f"/images/{w.frontend}"), READ, None),
    "tags": (lambda c, w: c.get(f"/images/{w.frontend}/tags"), READ, None),
    "manifest": (
        lambda c, w: c.get(
            f"/images/{w.frontend}/manifests/" + w.content.tagged["acme/web/frontend"]["v1"].digest
        ),
        READ,
        None,
    ),
    "delete tag": (
        lambda c, w: c.delete(
            f"/images/{w.frontend}/tags/{w.fresh_tag()}", headers=w.etag(w.frontend)
        ),
        DELETE_TAG,
        "write",
    ),
    "bulk delete tags": (
        lambda c, w: c.post(
            f"/images/{w.frontend}/tags/delete",
            json={"tags": [w.fresh_tag()]},
            headers=w.etag(w.frontend),
        ),
        BULK,
        "write",
    ),
    "delete image": (
        lambda c, w: (lambda i: c.delete(f"/images/{i}", headers=w.etag(i)))(w.fresh_image()),
        DELETE_IMAGE,
        "admin",
    ),
    "storage": (lambda c, w: c.get("/workspaces/acme/storage"), READ, None),
    "shared layers": (lambda c, w: c.get("/workspaces/acme/storage/shared-layers"), READ, None),
    "history": (lambda c, w: c.get("/workspaces/acme/storage/history"), READ, None),
    "storage overview": (lambda c, w: c.get("/workspaces/acme/storage/overview"), READ, None),
    "delete impact": (
        lambda c, w: c.post(
            "/workspaces/acme/storage/delete-impact",
            json={"tags": [{"image_id": w.frontend, "tag": "v1"}], "images": []},
        ),
        READ,
        None,
    ),
    "gc status": (lambda c, w: c.get("/workspaces/acme/gc"), READ, None),
    "gc run": (lambda c, w: c.post("/workspaces/acme/gc/run"), WS_ADMIN, "workspace_admin"),
    "audit": (lambda c, w: c.get("/workspaces/acme/audit"), WS_ADMIN, "workspace_admin"),
    "events": (_stream_status, READ, None),
    "create user": (
        lambda c, w: c.post("/users", json={"name": f"u{next(w.serial)}", "password": PASSWORD}),
        SUPERUSER_201,
        "superuser",
    ),
    "create workspace": (
        lambda c, w: c.post("/workspaces", json={"slug": f"ws{next(w.serial)}"}),
        SUPERUSER_201,
        "superuser",
    ),
    "workspace policy": (lambda c, w: c.get(w.policy()), READ, None),
    "set workspace policy": (
        lambda c, w: c.put("/workspaces/acme/policy", json={"rules": KEEP_ALL}),
        WS_ADMIN,
        "workspace_admin",
    ),
    "remove workspace policy": (
        lambda c, w: c.delete(w.policy()),
        WS_ADMIN_204,
        "workspace_admin",
    ),
    "repository policy": (lambda c, w: c.get(w.policy("web")), READ, None),
    "set repository policy": (
        lambda c, w: c.put("/workspaces/acme/repositories/web/policy", json={"rules": KEEP_ALL}),
        REPO_ADMIN,
        "admin",
    ),
    "remove repository policy": (
        lambda c, w: c.delete(w.policy("web")),
        REPO_ADMIN_204,
        "admin",
    ),
    # Previewing given rules needs the right to set them (the saved policy: read,
    # see tests/registry/test_policies.py).
    "preview workspace rules": (
        lambda c, w: c.post("/workspaces/acme/policy/previews", json={"rules": KEEP_ALL}),
        WS_ADMIN_201,
        "workspace_admin",
    ),
    "preview repository rules": (
        lambda c, w: c.post(
            "/workspaces/acme/repositories/web/policy/previews", json={"rules": KEEP_ALL}
        ),
        REPO_ADMIN_201,
        "admin",
    ),
    "preview": (lambda c, w: c.get(f"/policy-previews/{w.preview()}"), READ, None),
    "preview tags": (lambda c, w: c.get(f"/policy-previews/{w.preview()}/tags"), READ, None),
    "preview images": (
        lambda c, w: c.get(f"/policy-previews/{w.preview()}/images"),
        READ,
        None,
    ),
    "run preview": (_run_preview, WS_ADMIN_202, "workspace_admin"),
    "run workspace policy": (
        _run_saved("/workspaces/acme/policy/runs"),
        WS_ADMIN_202,
        "workspace_admin",
    ),
    "run repository policy": (
        _run_saved("/workspaces/acme/repositories/web/policy/runs"),
        REPO_ADMIN_202,
        "admin",
    ),
    "policy runs": (lambda c, w: c.get("/workspaces/acme/policy-runs"), READ, None),
    "policy run": (_read_run, READ, None),
    "trash": (lambda c, w: c.get("/workspaces/acme/trash"), READ, None),
    # A bulk restore answers per entry (test_trash_restore_per_entry says which).
    "restore trash": (
        lambda c, w: c.post(
            "/workspaces/acme/trash/restore", json={"entries": [{"id": w.trashed_tag()}]}
        ),
        READ,
        None,
    ),
    "empty trash": (
        lambda c, w: (
            w.trashed_tag(),
            c.post("/workspaces/acme/trash/empty", json={"all": True, "repository": "web"}),
        )[1],
        REPO_ADMIN,
        "admin",
    ),
    "members": (lambda c, w: c.get("/workspaces/acme/members"), WS_ADMIN, "workspace_admin"),
    "set member": (
        lambda c, w: c.put("/workspaces/acme/members/neo", json={"admin": False}),
        WS_ADMIN,
        "workspace_admin",
    ),
    "remove member": (
        lambda c, w: c.delete(f"/workspaces/acme/members/{w.fresh_member()}"),
        WS_ADMIN_204,
        "workspace_admin",
    ),
    "create project": (
        lambda c, w: c.post("/workspaces/acme/projects", json={"key": f"P{next(w.serial)}"}),
        WS_ADMIN_201,
        "workspace_admin",
    ),
    "create repository": (
        lambda c, w: c.post(
            "/workspaces/acme/repositories", json={"slug": f"r{next(w.serial)}", "project": "PLAT"}
        ),
        WS_ADMIN_201,
        "workspace_admin",
    ),
    "grants": (
        lambda c, w: c.get("/workspaces/acme/repositories/web/grants"),
        WS_ADMIN,
        "workspace_admin",
    ),
    "set grant": (
        lambda c, w: c.put(
            "/workspaces/acme/repositories/web/grants/neo", json={"permission": "read"}
        ),
        WS_ADMIN,
        "workspace_admin",
    ),
}


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("case", list(CASES))
def test_permission(world: World, case: str, user: str) -> None:
    call, expected, permission = CASES[case]
    with api(world.server, user) as c:
        r = call(c, world)
    assert r.status_code == expected[user], f"{case} as {user}: {r.status_code}"
    if r.status_code == 403:
        error = r.json()["error"]
        assert error["code"] == "FORBIDDEN"
        assert error["detail"]["required"] == permission
        assert permission.replace("_", " ") in error["message"]
        if permission in ("read", "write", "admin"):
            assert error["detail"]["repository"] == "acme/web"
            assert "acme/web" in error["message"]
    if r.status_code == 404:
        assert r.json()["error"]["code"] == "NOT_FOUND"


RESTORE_TAG = {"reader": "forbidden", "writer": "restored", "admin": "restored"}
RESTORE_TAG |= {"wsadmin": "restored", "root": "restored"}
RESTORE_IMAGE = {**RESTORE_TAG, "writer": "forbidden"}


@pytest.mark.parametrize("user", USERS)
def test_trash_restore_per_entry(world: World, user: str) -> None:
    """Restore a tag = write, restore an image = admin, per entry of one call; what
    the caller may not see at all answers 404 for the workspace."""
    tag, image = world.trashed_tag(), world.trashed_image()
    with api(world.server, user) as c:
        r = c.post("/workspaces/acme/trash/restore", json={"entries": [{"id": tag}, {"id": image}]})
        if user == "outsider":
            assert r.status_code == 404
            return
        assert r.status_code == 200, r.text
        got = [x["status"] for x in r.json()["results"]]
        assert got == [RESTORE_TAG[user], RESTORE_IMAGE[user]]
        r = c.post("/workspaces/acme/trash/empty", json={"entries": [image]})
        emptied = r.json()["results"][0]["status"]
    want = "emptied" if RESTORE_IMAGE[user] == "restored" else "forbidden"
    # An image restored above is no longer in the trash: nothing to empty.
    assert emptied == ("not_found" if want == "emptied" else want)


def test_every_operation_has_a_permission_case(world: World) -> None:
    with api(world.server) as c:
        spec = c.get("/openapi.json").json()
    operations = sum(
        1
        for methods in spec["paths"].values()
        for m in methods
        if m in ("get", "post", "put", "delete")
    )
    assert operations == len(CASES)


def test_other_workspaces_content_is_invisible(world: World) -> None:
    cli = world.content.ids["globex/tools/cli"]
    with api(world.server, "wsadmin") as c:
        assert c.get(f"/images/{cli}").status_code == 404
        assert c.get(f"/images/{cli}/tags").status_code == 404
        assert c.delete(f"/images/{cli}", headers={"If-Match": "*"}).status_code == 404
        r = c.post("/workspaces/acme/storage/delete-impact", json={"images": [cli], "tags": []})
        assert r.status_code == 404
    with api(world.server, "reader") as c:
        worker = world.content.ids["acme/api/worker"]
        # Same workspace, but no grant on acme/api.
        assert c.get(f"/images/{worker}").status_code == 404
        r = c.delete(f"/images/{worker}/tags/1.0", headers={"If-Match": "*"})
        assert r.status_code == 404
        layers = c.get("/workspaces/acme/storage/shared-layers").json()["items"]
        assert all(
            not i["full_name"].startswith("acme/api/") for layer in layers for i in layer["images"]
        )
        storage = c.get("/workspaces/acme/storage").json()
        assert [r["slug"] for r in storage["repositories"]] == ["web"]
