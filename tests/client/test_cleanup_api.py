"""The cleanup-policy client (``BerthApi.cleanup``) against a fake server
(``httpx.MockTransport``): its answers parsed into typed values, each failure as the
right error class (403 naming what is missing, 409 while a run is going, 404 for an
expired preview, 400 for a rule the server refuses, 503 with Retry-After, answers
that are not what the API promises), and requests sent exactly as documented.
tests/registry/test_policies.py runs the real server."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.client.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ServerError,
    ServiceUnavailable,
)
from app.core.cleanup import Rule, RuleKind
from app.core.permissions import Permission
from app.registry.api.errors import repository_forbidden, workspace_admin_forbidden
from tests.client.test_berth_api import FakeBerth, call, error

RULES = [
    {"kind": "keep_last", "value": 10},
    {"kind": "keep_regex", "value": "^v"},
    {"kind": "remove_older_than", "value": 30},
]


def policy_json(**extra: Any) -> dict[str, Any]:
    return {
        "scope": "acme/web",
        "workspace": "acme",
        "repository": "web",
        "rules": RULES,
        "interval": 86400,
        "next_run_at": "2026-12-09T00:00:00Z",
        "updated_at": "2026-12-08T00:00:00Z",
        "updated_by": "alice",
        "covers": ["web"],
        **extra,
    }


def preview_json(**extra: Any) -> dict[str, Any]:
    return {
        "id": 5,
        "scope": "acme",
        "rules": RULES,
        "saved": True,
        "created_at": "2026-12-08T00:00:00Z",
        "created_by": "alice",
        "expires_at": "2026-12-09T00:00:00Z",
        "images": 2,
        "tags": 10,
        "remove": 7,
        "keep": 3,
        "freed": 1000,
        "kept": 200,
        "freed_blobs": 4,
        "kept_blobs": 1,
        "plan_ms": 12,
        **extra,
    }


def run_json(**extra: Any) -> dict[str, Any]:
    return {
        "id": 9,
        "scope": "acme",
        "trigger": "manual",
        "actor": "alice",
        "node": "host:1",
        "state": "running",
        "preview_id": 5,
        "rules": RULES,
        "started_at": "2026-12-08T00:00:00Z",
        "finished_at": None,
        "tags_planned": 7,
        "tags_deleted": 0,
        "tags_changed": 0,
        "tags_missing": 0,
        "bytes_freed": 0,
        "error": None,
        **extra,
    }


BAD_ACTION = {
    "items": [{"image_id": 1, "image": "a/b/c", "tag": "t", "digest": "d", "action": "maybe"}],
    "next_cursor": None,
    "total": 1,
}


def test_policy_read_and_saved_as_typed_rules() -> None:
    server = FakeBerth()
    server.on(
        "GET", "/workspaces/acme/repositories/web/policy", httpx.Response(200, json=policy_json())
    )
    sent: list[Any] = []

    def put(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=policy_json())

    server.on("PUT", "/workspaces/acme/policy", put)
    policy = call(server, lambda api: api.cleanup.policy("acme", "web"))
    assert policy.rules == (
        Rule(RuleKind.KEEP_LAST, 10),
        Rule(RuleKind.KEEP_REGEX, "^v"),
        Rule(RuleKind.REMOVE_OLDER_THAN, 30),
    )
    assert policy.interval == 86400
    assert policy.covers == ("web",)
    call(server, lambda api: api.cleanup.set_policy("acme", None, policy.rules, 3600))
    assert sent == [{"rules": RULES, "interval": 3600}]


def test_an_empty_rule_list_is_refused_before_any_request() -> None:
    server = FakeBerth()
    with pytest.raises(ValueError, match="at least one rule"):
        call(server, lambda api: api.cleanup.set_policy("acme", None, []))
    assert server.requests == []


def test_403_names_workspace_admin_or_repository_admin() -> None:
    server = FakeBerth()
    ws = workspace_admin_forbidden("acme", "set its cleanup policy")
    repo = repository_forbidden(Permission.ADMIN, "acme/web", "run its cleanup policy")
    server.on("PUT", "/workspaces/acme/policy", error(403, "FORBIDDEN", ws.message, ws.detail))
    server.on(
        "POST",
        "/workspaces/acme/repositories/web/policy/runs",
        error(403, "FORBIDDEN", repo.message, repo.detail),
    )
    rules = [Rule(RuleKind.KEEP_LAST, 1)]
    with pytest.raises(PermissionDenied) as caught:
        call(server, lambda api: api.cleanup.set_policy("acme", None, rules))
    assert caught.value.required == "workspace_admin"
    assert caught.value.repository is None
    assert "workspace admin on acme is required to set its cleanup policy" in caught.value.message
    with pytest.raises(PermissionDenied) as caught:
        call(server, lambda api: api.cleanup.run_policy("acme", "web"))
    assert caught.value.required == "admin"
    assert caught.value.repository == "acme/web"
    assert caught.value.message.startswith("Starting the run:")


def test_409_while_a_run_of_the_scope_is_going() -> None:
    server = FakeBerth()
    message = "a cleanup run of acme is in progress (run 8); wait for it to finish"
    server.on("POST", "/policy-previews/5/runs", error(409, "CONFLICT", message))
    with pytest.raises(Conflict) as caught:
        call(server, lambda api: api.cleanup.run_preview(5))
    assert "in progress (run 8)" in caught.value.message


def test_404_for_an_expired_preview() -> None:
    server = FakeBerth()
    with pytest.raises(NotFound):
        call(server, lambda api: api.cleanup.preview_info(5))


def test_400_for_a_rule_the_server_refuses() -> None:
    server = FakeBerth()
    server.on(
        "POST",
        "/workspaces/acme/policy/previews",
        error(400, "INVALID_ARGUMENT", "keep_regex: '(a+)+' repeats a group ..."),
    )
    with pytest.raises(ServerError) as caught:
        call(server, lambda api: api.cleanup.preview("acme", rules=[Rule(RuleKind.KEEP_LAST, 1)]))
    assert caught.value.status == 400
    assert "repeats a group" in caught.value.message


def test_503_is_worth_a_retry() -> None:
    server = FakeBerth()
    server.on(
        "GET",
        "/policy-runs/9",
        error(503, "BUSY", "the registry is busy; retry shortly", headers={"Retry-After": "2"}),
    )
    with pytest.raises(ServiceUnavailable) as caught:
        call(server, lambda api: api.cleanup.run(9))
    assert caught.value.retry_after == 2


@pytest.mark.parametrize(
    ("path", "body", "use"),
    [
        ("/policy-previews/5", preview_json(freed=None), lambda api: api.cleanup.preview_info(5)),
        ("/policy-runs/9", run_json(tags_planned="7"), lambda api: api.cleanup.run(9)),
        (
            "/workspaces/acme/policy",
            policy_json(rules=[{"kind": "keep_everything", "value": 1}]),
            lambda api: api.cleanup.policy("acme"),
        ),
        ("/policy-previews/5/tags", BAD_ACTION, lambda api: api.cleanup.preview_tags(5)),
        ("/policy-previews/5/images", [1, 2], lambda api: api.cleanup.preview_images(5)),
    ],
)
def test_answers_that_break_the_contract_are_protocol_errors(
    path: str, body: Any, use: Any
) -> None:
    server = FakeBerth()
    server.on("GET", path, httpx.Response(200, json=body))
    with pytest.raises(ProtocolError):
        call(server, use)


def test_preview_pages_and_runs_send_what_the_api_documents() -> None:
    server = FakeBerth()
    seen: list[httpx.Request] = []

    def tags(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        row = {
            "image_id": 3,
            "image": "acme/web/app",
            "tag": "b1",
            "digest": "sha256:" + "cd" * 32,
            "action": "remove",
            "rule": "remove-older-than 30",
            "reason": "matches remove-older-than 30",
            "pushed_at": "2026-01-01T00:00:00Z",
            "last_pulled": None,
            "size": 42,
        }
        return httpx.Response(200, json={"items": [row], "next_cursor": "abc", "total": 7})

    def run(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=run_json())

    server.on("GET", "/policy-previews/5/tags", tags)
    server.on("POST", "/policy-previews/5/runs", run)
    page = call(
        server, lambda api: api.cleanup.preview_tags(5, action="remove", limit=50, cursor="xyz")
    )
    assert page.total == 7
    assert page.next_cursor == "abc"
    assert page.items[0].remove
    assert page.items[0].rule == "remove-older-than 30"
    assert page.items[0].last_pulled is None
    assert dict(seen[0].url.params) == {"action": "remove", "limit": "50", "cursor": "xyz"}
    started = call(server, lambda api: api.cleanup.run_preview(5, keep=[(3, "b2")]))
    assert started.running
    assert started.tags_planned == 7
    assert json.loads(seen[1].content) == {"keep": [{"image_id": 3, "tag": "b2"}]}
    assert server.writes == ["POST /api/v1/policy-previews/5/runs"]


def test_removing_a_policy_is_one_delete() -> None:
    server = FakeBerth()
    server.on("DELETE", "/workspaces/acme/repositories/web/policy", httpx.Response(204))
    assert call(server, lambda api: api.cleanup.delete_policy("acme", "web")) is None
    assert server.writes == ["DELETE /api/v1/workspaces/acme/repositories/web/policy"]
