"""The trash client (``BerthApi.trash``) against a fake server (``httpx.MockTransport``):
entries and per-entry results parsed into typed values, requests sent as documented,
and each failure as the right error class (403 naming admin on the repository, 404
for a workspace out of sight, 400 for a refused body, 503 with Retry-After) or a
ProtocolError for answers that break the contract. tests/registry/test_trash_*.py
run the real server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.client.errors import (
    NotFound,
    PermissionDenied,
    ProtocolError,
    ServerError,
    ServiceUnavailable,
)
from app.core.permissions import Permission
from app.registry.api.errors import repository_forbidden
from tests.client.test_berth_api import FakeBerth, call, error

DIGEST = "sha256:" + "cd" * 32


def entry_json(**extra: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "kind": "tag",
        "image_id": 3,
        "image": "acme/web/app",
        "repository": "web",
        "tag": "v1",
        "digest": DIGEST,
        "replaced_by": None,
        "size": 1234,
        "tag_count": 1,
        "action": "tag.delete",
        "deleted_by": "alice",
        "deleted_at": "2026-12-08T00:00:00.000Z",
        "expires_at": "2026-12-15T00:00:00.000Z",
        **extra,
    }


def page(*items: dict[str, Any], cursor: str | None = None) -> httpx.Response:
    return httpx.Response(200, json={"items": list(items), "next_cursor": cursor, "total": 9})


def test_entries_are_typed_and_filters_sent_as_query() -> None:
    server = FakeBerth()
    server.on("GET", "/workspaces/acme/trash", page(entry_json(), cursor="next"))
    got = call(
        server,
        lambda api: api.trash.entries("acme", repository="web", q="v1", sort="-size", limit=5),
    )
    (entry,) = got.items
    assert (entry.id, entry.kind, entry.tag, entry.digest, entry.deleted_by) == (
        7, "tag", "v1", DIGEST, "alice"
    )  # fmt: skip
    assert entry.expires_at == datetime(2026, 12, 15, tzinfo=UTC)
    assert (got.next_cursor, got.total) == ("next", 9)
    params = dict(server.requests[0].url.params)
    assert params == {"repository": "web", "q": "v1", "sort": "-size", "limit": "5"}


def test_restore_sends_ids_and_new_names_and_reads_a_result_per_entry() -> None:
    server = FakeBerth()
    sent: list[Any] = []

    def restore(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "results": [
                    {"id": 7, "status": "restored", "message": "restored", "image_id": 3,
                     "tag": "v1-old", "digest": DIGEST},
                    {"id": 8, "status": "conflict", "message": "tag v2 was pushed again since"},
                ],
                "restored": 1,
            },
        )  # fmt: skip

    server.on("POST", "/workspaces/acme/trash/restore", restore)
    results = call(server, lambda api: api.trash.restore("acme", [(7, "v1-old"), 8]))
    assert sent == [{"entries": [{"id": 7, "as": "v1-old"}, {"id": 8}]}]
    assert [r.restored for r in results] == [True, False]
    assert results[0].tag == "v1-old"
    assert "pushed again" in results[1].message
    # Nothing to restore: no request at all.
    assert call(server, lambda api: api.trash.restore("acme", [])) == []
    assert len(server.requests) == 1


def test_empty_all_or_selected() -> None:
    server = FakeBerth()
    sent: list[Any] = []

    def empty(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"results": [{"id": 7, "status": "emptied"}], "emptied": 1})

    server.on("POST", "/workspaces/acme/trash/empty", empty)
    (result,) = call(server, lambda api: api.trash.empty("acme", [7]))
    assert (result.id, result.status) == (7, "emptied")
    call(server, lambda api: api.trash.empty("acme", repository="web", older_than_s=3600))
    assert sent == [
        {"entries": [7]},
        {"all": True, "repository": "web", "older_than_s": 3600},
    ]


def test_403_names_admin_on_the_repository() -> None:
    denied = repository_forbidden(Permission.ADMIN, "acme/web", "empty the trash")
    server = FakeBerth()
    server.on(
        "POST",
        "/workspaces/acme/trash/empty",
        error(403, "FORBIDDEN", denied.message, denied.detail),
    )
    with pytest.raises(PermissionDenied) as caught:
        call(server, lambda api: api.trash.empty("acme"))
    assert caught.value.required == "admin"
    assert caught.value.repository == "acme/web"
    assert "admin permission on acme/web is required to empty the trash" in caught.value.message


def test_404_400_and_503() -> None:
    server = FakeBerth()
    server.on("GET", "/workspaces/nope/trash", error(404, "NOT_FOUND", "no workspace 'nope'"))
    server.on(
        "POST",
        "/workspaces/acme/trash/restore",
        error(400, "INVALID_ARGUMENT", "entries: at most 1000"),
    )
    server.on(
        "POST",
        "/workspaces/acme/trash/empty",
        error(503, "TOOMANYREQUESTS", "busy", headers={"Retry-After": "2"}),
    )
    with pytest.raises(NotFound):
        call(server, lambda api: api.trash.entries("nope"))
    with pytest.raises(ServerError) as refused:
        call(server, lambda api: api.trash.restore("acme", [1]))
    assert (refused.value.status, refused.value.code) == (400, "INVALID_ARGUMENT")
    with pytest.raises(ServiceUnavailable) as caught:
        call(server, lambda api: api.trash.empty("acme", [1]))
    assert caught.value.retry_after == 2


@pytest.mark.parametrize(
    "bad",
    [
        entry_json(kind="blob"),  # an unknown kind
        entry_json(id="7"),  # mistyped
        {k: v for k, v in entry_json().items() if k != "expires_at"},  # missing
        entry_json(deleted_at="yesterday"),
    ],
)
def test_an_entry_that_breaks_the_contract_is_a_protocol_error(bad: dict[str, Any]) -> None:
    server = FakeBerth()
    server.on("GET", "/workspaces/acme/trash", page(bad))
    with pytest.raises(ProtocolError):
        call(server, lambda api: api.trash.entries("acme"))


def test_results_that_break_the_contract_are_protocol_errors() -> None:
    server = FakeBerth()
    server.on(
        "POST",
        "/workspaces/acme/trash/restore",
        httpx.Response(200, json={"results": [{"id": 1, "status": "maybe"}], "restored": 0}),
    )
    server.on(
        "POST",
        "/workspaces/acme/trash/empty",
        httpx.Response(200, json={"results": [{"id": 1}], "emptied": 0}),
    )
    with pytest.raises(ProtocolError, match="unknown status"):
        call(server, lambda api: api.trash.restore("acme", [1]))
    with pytest.raises(ProtocolError):
        call(server, lambda api: api.trash.empty("acme", [1]))
    # Fewer results than entries asked for.
    server.on(
        "POST",
        "/workspaces/acme/trash/restore",
        httpx.Response(200, json={"results": [], "restored": 0}),
    )
    with pytest.raises(ProtocolError, match="0 results for 2"):
        call(server, lambda api: api.trash.restore("acme", [1, 2]))
