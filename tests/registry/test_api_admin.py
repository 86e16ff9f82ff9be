"""Administration through the management API, mirroring the command line: users,
workspaces, members, projects, repositories and grants, each audited."""

from __future__ import annotations

from tests.support.api import api
from tests.support.registry import PASSWORD, RegistryServer


def test_users_and_workspaces(registry: RegistryServer) -> None:
    with api(registry) as c:
        r = c.post("/users", json={"name": "alice", "password": PASSWORD})
        assert r.status_code == 201
        assert r.json() == {"name": "alice", "superuser": False}
        dup = c.post("/users", json={"name": "alice", "password": PASSWORD})
        assert dup.status_code == 409
        assert dup.json()["error"]["code"] == "CONFLICT"
        assert c.post("/users", json={"name": "bob", "password": "short"}).status_code == 400
        assert c.post("/users", json={"name": "Bad Name", "password": PASSWORD}).status_code == 400
        r = c.post("/workspaces", json={"slug": "initech", "name": "Initech"})
        assert r.status_code == 201
        assert r.json()["role"] == "admin"
        assert c.post("/workspaces", json={"slug": "initech"}).status_code == 409
        assert c.post("/workspaces", json={"slug": "Not_A_Slug"}).status_code == 400
        assert c.get("/workspaces/initech").json()["name"] == "Initech"
    with api(registry, "alice") as c:
        me = c.get("/me").json()
        assert me == {"user": {"name": "alice", "superuser": False}, "workspaces": []}
        assert c.get("/workspaces/initech").status_code == 404


def test_members_projects_repositories_and_grants(registry: RegistryServer) -> None:
    with api(registry) as c:
        assert c.post("/users", json={"name": "carol", "password": PASSWORD}).status_code == 201
    with api(registry, "wsadmin") as c:
        assert c.put("/workspaces/acme/members/carol", json={"admin": False}).json() == {
            "user": "carol",
            "admin": False,
        }
        members = c.get("/workspaces/acme/members").json()["items"]
        assert {"user": "carol", "admin": False} in members
        assert {"user": "wsadmin", "admin": True} in members
        assert c.put("/workspaces/acme/members/nobody", json={"admin": False}).status_code == 404
        r = c.post("/workspaces/acme/projects", json={"key": "DATA", "name": "Data team"})
        assert r.status_code == 201
        assert r.json() == {
            "key": "DATA",
            "name": "Data team",
            "repository_count": 0,
            "image_count": 0,
        }
        assert c.post("/workspaces/acme/projects", json={"key": "DATA"}).status_code == 409
        assert c.post("/workspaces/acme/projects", json={"key": "lower"}).status_code == 400
        r = c.post("/workspaces/acme/repositories", json={"slug": "etl", "project": "DATA"})
        assert r.status_code == 201
        assert r.json()["permission"] == "admin"
        assert r.json()["project"] == "DATA"
        missing = c.post("/workspaces/acme/repositories", json={"slug": "x", "project": "NOPE"})
        assert missing.status_code == 404
    # A member without a grant cannot see the new repository ...
    with api(registry, "carol") as c:
        assert c.get("/workspaces/acme/repositories").json()["items"] == []
        assert c.get("/workspaces/acme").json()["role"] == "member"
    with api(registry, "wsadmin") as c:
        r = c.put("/workspaces/acme/repositories/etl/grants/carol", json={"permission": "write"})
        assert r.json() == {"user": "carol", "permission": "write"}
        grants = c.get("/workspaces/acme/repositories/etl/grants").json()["items"]
        assert grants == [{"user": "carol", "permission": "write"}]
        bad = c.put("/workspaces/acme/repositories/etl/grants/carol", json={"permission": "root"})
        assert bad.status_code == 400
    # ... and sees it once granted.
    with api(registry, "carol") as c:
        repos = c.get("/workspaces/acme/repositories").json()["items"]
        assert [(r["slug"], r["permission"]) for r in repos] == [("etl", "write")]
        assert [p["key"] for p in c.get("/workspaces/acme/projects").json()["items"]] == [
            "DATA",
            "PLAT",
        ]
    with api(registry, "wsadmin") as c:
        assert (
            c.put(
                "/workspaces/acme/repositories/etl/grants/carol", json={"permission": "none"}
            ).status_code
            == 200
        )
        assert c.get("/workspaces/acme/repositories/etl/grants").json()["items"] == []
        assert c.delete("/workspaces/acme/members/carol").status_code == 204
        assert c.delete("/workspaces/acme/members/carol").status_code == 404
        audit = [
            (e["actor"], e["action"], e["target"])
            for e in c.get("/workspaces/acme/audit").json()["items"]
        ]
        assert audit[:6] == [
            ("wsadmin", "member.remove", "acme:carol"),
            ("wsadmin", "grant.set", "acme/etl:carol"),
            ("wsadmin", "grant.set", "acme/etl:carol"),
            ("wsadmin", "repository.create", "acme/etl"),
            ("wsadmin", "project.create", "acme:DATA"),
            ("wsadmin", "member.set", "acme:carol"),
        ]
    with api(registry, "carol") as c:
        assert c.get("/workspaces/acme").status_code == 404


def test_a_guest_sees_only_what_is_granted(registry: RegistryServer) -> None:
    with api(registry) as c:
        assert c.post("/users", json={"name": "dave", "password": PASSWORD}).status_code == 201
        assert c.post("/workspaces/acme/projects", json={"key": "OTHER"}).status_code == 201
        assert (
            c.put("/workspaces/acme/repositories/api/grants/dave", json={"permission": "read"})
        ).status_code == 200
    with api(registry, "dave") as c:
        ws = c.get("/workspaces/acme").json()
        assert (ws["role"], ws["project_count"], ws["repository_count"]) == ("guest", 1, 1)
        assert [p["key"] for p in c.get("/workspaces/acme/projects").json()["items"]] == ["PLAT"]
        assert c.get("/workspaces/acme/members").status_code == 403
