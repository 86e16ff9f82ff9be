"""Cleanup policies through a real registry process: policies per workspace and
repository, previews that runs execute exactly, a tag pushed again between preview
and run, the storage effect, schedules, the command line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support import oci
from tests.support.api import api, as_listed
from tests.support.registry import RegistryServer, admin, admin_ok

FAST = ["--pull-flush-interval", "0.2", "--policy-check-interval", "0.2"]
KEEP2_REMOVE_REST = [
    {"kind": "keep_last", "value": 2},
    {"kind": "keep_regex", "value": "^v\\d+$"},
    {"kind": "remove_older_than", "value": 0},
]


def _wait_for(fn: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, "the expected state never came"
        time.sleep(0.05)


def _walk(c: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        r = c.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        out += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return out


def _tags(c: httpx.Client, image_id: int) -> dict[str, str]:
    return {t["name"]: t["digest"] for t in _walk(c, f"/images/{image_id}/tags")}


def _image_id(c: httpx.Client, ws: str, q: str) -> int:
    items = c.get(f"/workspaces/{ws}/images", params={"q": q}).json()["items"]
    return int(next(i["id"] for i in items if i["name"] == q))


def _finished(c: httpx.Client, run_id: int) -> dict[str, Any] | None:
    run = c.get(f"/policy-runs/{run_id}").json()
    return run if run["state"] != "running" else None


@pytest.fixture
def server(registry_factory: Callable[..., RegistryServer]) -> RegistryServer:
    return registry_factory(extra_args=FAST, review_delay=3600)


def _push_builds(server: RegistryServer, name: str, count: int, prefix: str = "b") -> list[str]:
    """``count`` builds of an image, each its own layer over a shared base, tagged
    b0..b<count-1> in push order, plus v1 on the first."""
    base = oci.random_layer(3000, "base")
    tags = []
    with server.client("root") as c:
        for n in range(count):
            img = oci.image([base, oci.random_layer(3000, f"{name}{n}")], label=f"{name}{n}")
            oci.push(c, name, img, f"{prefix}{n}")
            tags.append(f"{prefix}{n}")
            if n == 0:
                oci.push(c, name, img, "v1")
            time.sleep(0.002)  # distinct push times
    return tags


def test_policy_set_show_override_and_errors(server: RegistryServer) -> None:
    with api(server) as c:
        empty = c.get("/workspaces/acme/policy").json()
        assert empty["rules"] == []
        assert empty["updated_at"] is None
        r = c.put("/workspaces/acme/policy", json={"rules": KEEP2_REMOVE_REST, "interval": 3600})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["scope"] == "acme"
        assert body["rules"] == KEEP2_REMOVE_REST
        assert body["interval"] == 3600
        assert body["next_run_at"] is not None
        assert body["covers"] == ["api", "web"]
        r = c.put(
            "/workspaces/acme/repositories/web/policy",
            json={"rules": [{"kind": "remove_not_pulled_for", "value": 30}]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["covers"] == ["web"]
        assert r.json()["interval"] is None
        # The repository's own policy overrides the workspace's there.
        assert c.get("/workspaces/acme/policy").json()["covers"] == ["api"]
        for bad, why in (
            ([{"kind": "keep_regex", "value": "("}], "not a regular expression"),
            ([{"kind": "keep_regex", "value": "(a+)+$"}], "exponential"),
            # A lone surrogate (the JSON escape \ud800) is no text: the API's parser
            # refuses it (the command line's check: test_command_line).
            ([{"kind": "keep_regex", "value": "v\ud800"}], "valid string"),
            ([{"kind": "keep_last", "value": -1}], ""),
            ([{"kind": "keep_last", "value": "3"}], ""),
            ([{"kind": "keep_first", "value": 1}], ""),
            ([], ""),
        ):
            # Sent as ASCII JSON (escapes), as httpx's own encoder cannot send a surrogate.
            body = json.dumps({"rules": bad})
            headers = {"Content-Type": "application/json"}
            answers = [c.put("/workspaces/acme/policy", content=body, headers=headers)]
            if bad:  # previewing no rules is allowed (nothing goes); saving none is not
                answers.append(
                    c.post("/workspaces/acme/policy/previews", content=body, headers=headers)
                )
            for r in answers:
                assert r.status_code == 400, r.text
                assert r.json()["error"]["code"] == "INVALID_ARGUMENT"
                assert why in r.json()["error"]["message"]
        assert c.delete("/workspaces/acme/repositories/web/policy").status_code == 204
        assert c.get("/workspaces/acme/repositories/web/policy").json()["rules"] == []
        assert c.get("/workspaces/acme/policy").json()["covers"] == ["api", "web"]
        audit = [e["action"] for e in c.get("/workspaces/acme/audit").json()["items"]]
        assert audit[:3] == ["policy.delete", "policy.set", "policy.set"]


def test_preview_is_what_the_run_deletes(server: RegistryServer) -> None:
    tags = _push_builds(server, "acme/web/app", 8)
    _push_builds(server, "acme/api/svc", 3, prefix="s")
    with api(server) as c:
        assert (
            c.put("/workspaces/acme/policy", json={"rules": KEEP2_REMOVE_REST}).status_code == 200
        )
        app_id = _image_id(c, "acme", "app")
        before = _tags(c, app_id)
        r = c.post("/workspaces/acme/policy/previews")
        assert r.status_code == 201, r.text
        preview = r.json()
        rows = _walk(c, f"/policy-previews/{preview['id']}/tags", limit=5)
        assert preview["tags"] == len(rows) == 9 + 4
        removed = {(t["image"], t["tag"]) for t in rows if t["action"] == "remove"}
        # app: the two newest builds and v1 stay; the rest go. svc: two newest stay.
        assert removed == {("acme/web/app", t) for t in tags[:6]} | {("acme/api/svc", "s0")}
        by_tag = {(t["image"], t["tag"]): t for t in rows}
        assert by_tag[("acme/web/app", "b7")]["rule"] == "keep-last 2"
        assert by_tag[("acme/web/app", "v1")]["rule"] == "keep-regex ^v\\d+$"
        assert by_tag[("acme/web/app", "b1")]["rule"] == "remove-older-than 0"
        assert preview["remove"] == 7
        images = _walk(c, f"/policy-previews/{preview['id']}/images")
        assert {(i["image"], i["remove"], i["keep"]) for i in images} == {
            ("acme/web/app", 6, 3),
            ("acme/api/svc", 1, 3),
        }
        # The storage effect is the delete impact of exactly those tags: b0's layer
        # stays (v1 holds it), b1..b5's go; nothing else changes.
        impact = c.post(
            "/workspaces/acme/storage/delete-impact",
            json={
                "tags": [
                    {"image_id": _image_id(c, "acme", image.rsplit("/", 1)[1]), "tag": tag}
                    for image, tag in sorted(removed)
                ]
            },
        ).json()
        assert (preview["freed"], preview["kept"]) == (impact["freed"], impact["kept"])
        assert preview["freed"] > 0
        r = c.post(f"/policy-previews/{preview['id']}/runs")
        assert r.status_code == 202, r.text
        run = _wait_for(lambda: _finished(c, r.json()["id"]))
        assert run["state"] == "done", run
        assert run["tags_deleted"] == run["tags_planned"] == 7
        assert run["bytes_freed"] == preview["freed"]
        after = _tags(c, app_id)
        assert set(after) == set(before) - set(tags[:6])
        assert c.get("/workspaces/acme/gc").json()["pending_bytes"] >= preview["freed"]
        actions = [e["action"] for e in _walk(c, "/workspaces/acme/audit")]
        assert actions.count("tag.delete") == 7
        assert "policy.run" in actions
        runs = c.get("/workspaces/acme/policy-runs").json()
        assert runs["items"][0]["id"] == run["id"]
        assert runs["items"][0]["trigger"] == "manual"
        assert runs["items"][0]["actor"] == "root"


def test_a_tag_pushed_again_after_the_preview_is_not_deleted(server: RegistryServer) -> None:
    _push_builds(server, "acme/web/app", 5)
    with api(server) as c:
        app_id = _image_id(c, "acme", "app")
        rules = [{"kind": "keep_last", "value": 1}, {"kind": "remove_older_than", "value": 0}]
        r = c.post("/workspaces/acme/repositories/web/policy/previews", json={"rules": rules})
        assert r.status_code == 201, r.text
        preview = r.json()
        assert preview["saved"] is False
        assert preview["remove"] == 5  # b0..b3 and v1
        with server.client("root") as oc:
            oci.push(oc, "acme/web/app", oci.image([oci.random_layer(100, "new")]), "b1")
        # A one-off exception keeps b2 this time.
        r = c.post(
            f"/policy-previews/{preview['id']}/runs",
            json={"keep": [{"image_id": app_id, "tag": "b2"}]},
        )
        assert r.status_code == 202, r.text
        run = _wait_for(lambda: _finished(c, r.json()["id"]))
        assert run["state"] == "done", run
        assert run["tags_changed"] == 1
        assert run["tags_deleted"] == 3
        assert run["tags_planned"] == 4
        assert set(_tags(c, app_id)) == {"b1", "b2", "b4"}


def test_index_children_stay_with_their_index(server: RegistryServer) -> None:
    base = oci.random_layer(1000, "base")
    amd = oci.image([base, oci.random_layer(1000, "amd")], arch="amd64", label="amd")
    arm = oci.image([base, oci.random_layer(1000, "arm")], arch="arm64", label="arm")
    with server.client("root") as c:
        oci.push(c, "acme/web/multi", amd, "amd-only")
        oci.push(c, "acme/web/multi", arm, "arm-only")
        oci.push(c, "acme/web/multi", oci.index([amd, arm]), "release")
    with api(server) as c:
        rules = [{"kind": "keep_regex", "value": "^release$"},
                 {"kind": "remove_older_than", "value": 0}]  # fmt: skip
        preview = c.post("/workspaces/acme/policy/previews", json={"rules": rules}).json()
        rows = {t["tag"]: t for t in _walk(c, f"/policy-previews/{preview['id']}/tags")}
        assert {t: r["action"] for t, r in rows.items()} == {
            "release": "keep",
            "amd-only": "keep",
            "arm-only": "keep",
        }
        assert rows["amd-only"]["rule"] == "index"
        assert preview["freed"] == 0


def test_preview_rows_of_unreadable_repositories_are_hidden(server: RegistryServer) -> None:
    _push_builds(server, "acme/web/app", 3)
    _push_builds(server, "acme/api/svc", 3, prefix="s")
    with api(server) as c:
        assert (
            c.put("/workspaces/acme/policy", json={"rules": KEEP2_REMOVE_REST}).status_code == 200
        )
    with api(server, "reader") as c:  # read on acme/web only
        preview = c.post("/workspaces/acme/policy/previews").json()
        rows = _walk(c, f"/policy-previews/{preview['id']}/tags")
        assert {r["image"] for r in rows} == {"acme/web/app"}
        assert c.get("/workspaces/acme/policy").json()["covers"] == ["web"]


def test_scheduled_runs_happen_and_are_recorded(server: RegistryServer) -> None:
    _push_builds(server, "acme/web/app", 4)
    with api(server) as c:
        rules = [{"kind": "keep_last", "value": 1}, {"kind": "remove_older_than", "value": 0}]
        r = c.put("/workspaces/acme/policy", json={"rules": rules, "interval": 1})
        assert r.status_code == 200, r.text
        app_id = _image_id(c, "acme", "app")
        _wait_for(lambda: set(_tags(c, app_id)) == {"b3"})
        runs = _wait_for(
            lambda: [x for x in _walk(c, "/workspaces/acme/policy-runs") if x["state"] == "done"]
        )
        first = runs[-1]
        assert first["trigger"] == "schedule"
        assert first["actor"] is None
        assert first["tags_deleted"] == 4


def test_one_run_per_scope_at_a_time(server: RegistryServer) -> None:
    _push_builds(server, "acme/web/app", 2)
    with api(server) as c:
        rules = [{"kind": "keep_last", "value": 5}]
        assert c.put("/workspaces/acme/policy", json={"rules": rules}).status_code == 200
        first = c.post("/workspaces/acme/policy/runs")
        assert first.status_code == 202, first.text
        second = c.post("/workspaces/acme/policy/runs")
        # The first may have finished already; if not, the second is refused.
        if second.status_code == 409:
            assert second.json()["error"]["code"] == "CONFLICT"
            assert "in progress" in second.json()["error"]["message"]
        else:
            assert second.status_code == 202
        _wait_for(lambda: _finished(c, first.json()["id"]))


def test_command_line(server: RegistryServer) -> None:
    _push_builds(server, "acme/web/app", 4)
    data = server.data
    out = admin_ok(data, "policy", "set", "acme/web", "--keep-last", "2", "--keep-regex", "^v",
                   "--remove-older-than", "0", "--interval", "1d")  # fmt: skip
    assert "acme/web" in out
    shown = json.loads(admin_ok(data, "policy", "show", "acme/web", "--json"))
    assert shown["interval"] == 86400
    assert [r["kind"] for r in shown["rules"]] == ["keep_last", "keep_regex", "remove_older_than"]
    lines = admin_ok(data, "policy", "preview", "acme/web", "--json").splitlines()
    rows = [json.loads(line) for line in lines]
    assert {r["tag"]: r["action"] for r in rows} == {
        "b0": "remove", "b1": "remove", "b2": "keep", "b3": "keep", "v1": "keep",
    }  # fmt: skip
    assert all({"image", "tag", "digest", "action", "rule"} <= set(r) for r in rows)
    given = admin_ok(data, "policy", "preview", "acme/web", "--keep-last", "1",
                     "--remove-not-pulled-for", "0", "--json")  # fmt: skip
    assert sum(json.loads(x)["action"] == "remove" for x in given.splitlines()) == 4
    # Bytes that are no UTF-8 reach the program as lone surrogates: one clear line.
    bad = admin(data, "policy", "preview", "acme/web", "--keep-regex", "v\udcff",
                "--remove-older-than", "0")  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "berth-registry: error: keep_regex: 'v\\udcff' is not valid Unicode text"
    )
    out = admin_ok(data, "policy", "run", "acme/web")
    assert "2 of 2 tags deleted" in out
    with api(server) as c:
        assert set(_tags(c, _image_id(c, "acme", "app"))) == {"b2", "b3", "v1"}
    bad = admin(data, "policy", "set", "acme/web", "--keep-regex", "(")
    assert bad.returncode == 2
    assert "not a regular expression" in bad.stderr
    none = admin(data, "policy", "show", "globex")
    assert none.returncode == 2
    assert "no cleanup policy" in none.stderr


def test_deletes_through_the_api_still_need_if_match(server: RegistryServer) -> None:
    """The policy path does not loosen the ordinary deletes next to it."""
    _push_builds(server, "acme/web/app", 1)
    with api(server) as c:
        app_id = _image_id(c, "acme", "app")
        assert c.delete(f"/images/{app_id}/tags/b0").status_code == 428
        assert (
            c.delete(f"/images/{app_id}/tags/b0", headers=as_listed(c, app_id)).status_code == 204
        )


def test_preview_pages_over_many_tags_match_the_plan(server: RegistryServer) -> None:
    """A preview holding more tags than one page: every way of paging it (all rows,
    only the tags that go, only those that stay, one image) gives exactly the plan's
    rows in the plan's order, whatever the page size, and the totals agree."""
    many = 2 * 1000 + 150  # more than two stored chunks of one image
    small = oci.image([oci.random_layer(2000, "pages")], label="pages")
    other = oci.image([oci.random_layer(2000, "pages-other")], label="pages-other")
    with server.client("root") as c:
        oci.push(c, "acme/web/app", small, "t0000")
        for n in range(1, many):
            r = c.put(
                f"/v2/acme/web/app/manifests/t{n:04d}",
                content=small.manifest.data,
                headers={"Content-Type": small.manifest.media_type},
            )
            assert r.status_code == 201, r.text
        for n in range(3):
            oci.push(c, "acme/api/svc", other, f"s{n}")
    # One in ten stays by name; svc's tags all stay; the rest go.
    rules = [{"kind": "keep_regex", "value": "(5$|^s)"}, {"kind": "remove_older_than", "value": 0}]
    cli = admin_ok(server.data, "policy", "preview", "acme", "--keep-regex", "(5$|^s)",
                   "--remove-older-than", "0", "--json")  # fmt: skip
    planned = [
        (r["image"], r["tag"], r["digest"], r["action"], r["rule"])
        for r in map(json.loads, cli.splitlines())
    ]
    assert len(planned) == many + 3

    def rows(page: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(t["image"], t["tag"], t["digest"], t["action"], t["rule"]) for t in page]

    with api(server) as c:
        preview = c.post("/workspaces/acme/policy/previews", json={"rules": rules}).json()
        assert (preview["tags"], preview["remove"]) == (many + 3, many - many // 10)
        tags = f"/policy-previews/{preview['id']}/tags"
        for limit in (1000, 333, 7):
            assert rows(_walk(c, tags, limit=limit)) == planned
        assert rows(_walk(c, tags, action="remove", limit=1000)) == [
            p for p in planned if p[3] == "remove"
        ]
        assert rows(_walk(c, tags, action="keep", limit=9)) == [
            p for p in planned if p[3] == "keep"
        ]
        svc = _image_id(c, "acme", "svc")
        assert rows(_walk(c, tags, image_id=svc, limit=2)) == [
            p for p in planned if p[0] == "acme/api/svc"
        ]
        for action, expected in (("remove", many - many // 10), ("keep", many // 10 + 3)):
            page = c.get(tags, params={"action": action, "limit": 1}).json()
            assert page["total"] == expected
        images = _walk(c, f"/policy-previews/{preview['id']}/images")
        assert {(i["image"], i["remove"], i["keep"]) for i in images} == {
            ("acme/web/app", many - many // 10, many // 10),
            ("acme/api/svc", 0, 3),
        }
