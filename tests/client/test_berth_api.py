"""The typed management-API client (``BerthApi``) against a fake server
(``httpx.MockTransport``): each failure as the right error class with a sentence for
the admin (401, 403 naming the missing permission, 404, 409, 503 and its
Retry-After, bodies that are not JSON or not the right JSON, a refused connection, a
timeout), cursor paging, bulk tag deletes (the size limit, per-tag results, chunks
through the window's bulk runner), and that nothing is deleted unless a delete
method is called. tests/registry/ runs the real server."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from app.client.berth_api import BULK_DELETE_MAX, BerthApi, Image, Page, StayingTags, Tag
from app.client.errors import (
    AuthenticationFailed,
    ClientError,
    Conflict,
    ConnectionFailed,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ServerError,
    ServiceUnavailable,
)
from app.client.profiles import Profile
from app.client.transport import ConnectionSettings
from app.core.permissions import Permission
from app.registry.api.errors import repository_forbidden, workspace_admin_forbidden
from app.ui.backends.berth import BerthBackend
from app.ui.backends.deletion import BulkDelete
from tests.client.test_transport import run

URL = "https://berth.test"
HOST = "berth.test"
# An image as a listing gave it: deletes through its id send its ETag.
IMAGE7 = Image(
    id=7,
    name="f",
    full_name="acme/web/f",
    repository="web",
    project="",
    tag_count=3,
    size=0,
    exclusive_size=0,
    last_push=None,
    workspace="acme",
    etag='"7:acme/web/f"',
)

Route = Callable[[httpx.Request], httpx.Response]


def error(status: int, code: str, message: str, detail: Any = None, **kw: Any) -> httpx.Response:
    """An error as the management API renders it (app.registry.api.errors)."""
    body = {"error": {"code": code, "message": message, "detail": detail}}
    return httpx.Response(status, json=body, **kw)


def tag_json(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "digest": "sha256:" + "ab" * 32,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "size": 1234,
        "platforms": ["linux/amd64"],
        "created": "2026-01-02T03:04:05Z",
        "pushed_at": "2026-01-03T00:00:00Z",
        "other_tags": [],
        "other_tag_count": 0,
        **extra,
    }


IMAGE = Image(7, "frontend", "acme/web/frontend", "web", "PLATFORM", 3, 100, 50, None, "acme")


@dataclass
class FakeBerth:
    """Routes by (method, path); records every request that reached the server."""

    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get((request.method, unquote(request.url.path)))
        if route is None:
            return error(404, "NOT_FOUND", f"no route {request.method} {request.url.path}")
        return route(request)

    def on(self, method: str, path: str, route: Route | httpx.Response) -> None:
        if isinstance(route, httpx.Response):
            answer = route

            def route(_request: httpx.Request) -> httpx.Response:
                return answer

        self.routes[(method, "/api/v1" + path)] = route

    def api(self) -> BerthApi:
        return BerthApi.connect(
            ConnectionSettings(URL), "alice", "s3cret", transport=httpx.MockTransport(self)
        )

    @property
    def writes(self) -> list[str]:
        """Requests that change something on a real server (all but GET and the
        delete-impact computation, which only reads)."""
        return [
            f"{r.method} {unquote(r.url.path)}"
            for r in self.requests
            if r.method != "GET" and not r.url.path.endswith("/delete-impact")
        ]


def call(server: FakeBerth, use: Callable[[BerthApi], Any]) -> Any:
    async def scenario() -> Any:
        async with server.api() as api:
            return await use(api)

    return run(scenario())


# --- each failure: its class and its sentence ---------------------------------------


def test_401_is_authentication_failed_and_the_password_went_only_in_the_header() -> None:
    server = FakeBerth()
    server.on(
        "GET",
        "/me",
        error(401, "UNAUTHORIZED", "wrong user name or password",
              headers={"WWW-Authenticate": 'Basic realm="berth"'}),
    )  # fmt: skip
    with pytest.raises(AuthenticationFailed) as caught:
        call(server, lambda api: api.me())
    assert caught.value.status == 401
    assert caught.value.code == "UNAUTHORIZED"
    assert caught.value.message == (
        f"Checking the credentials: {HOST} needs valid credentials (missing, wrong or "
        "expired): wrong user name or password (UNAUTHORIZED)."
    )
    # Basic on the first request (no token round trip), and not again after the 401.
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request.headers["Authorization"].startswith("Basic ")
    assert "s3cret" not in str(request.url)
    assert "s3cret" not in caught.value.message


def test_403_names_the_missing_permission_and_where() -> None:
    denied = repository_forbidden(Permission.WRITE, "acme/web", "delete a tag")
    server = FakeBerth()
    server.on("DELETE", "/images/7/tags/v1", error(403, "FORBIDDEN", denied.message, denied.detail))
    with pytest.raises(PermissionDenied) as caught:
        call(server, lambda api: api.delete_tag(IMAGE7, "v1"))
    assert caught.value.status == 403
    assert caught.value.required == "write"
    assert caught.value.repository == "acme/web"
    assert caught.value.message == (
        f"Deleting tag v1: {HOST} denied access: write permission on acme/web is required "
        "to delete a tag (FORBIDDEN)."
    )

    # A workspace-level refusal says what is needed, with no repository to name.
    admin = workspace_admin_forbidden("acme", "run GC")
    server.on(
        "POST", "/workspaces/acme/gc/run", error(403, "FORBIDDEN", admin.message, admin.detail)
    )
    with pytest.raises(PermissionDenied) as caught:
        call(server, lambda api: api.run_gc("acme"))
    assert caught.value.required == "workspace_admin"
    assert caught.value.repository is None
    assert "workspace admin on acme is required to run GC" in caught.value.message


def test_404_409_and_503_with_retry_after() -> None:
    server = FakeBerth()
    server.on("GET", "/images/7", error(404, "NOT_FOUND", "no image 7"))
    server.on("POST", "/workspaces/acme/gc/run", error(409, "CONFLICT", "a GC run is in progress"))
    server.on(
        "GET", "/workspaces/acme/storage",
        error(503, "BUSY", "the database is busy", headers={"Retry-After": "1"}),
    )  # fmt: skip
    server.on("GET", "/workspaces/acme/gc", httpx.Response(429, headers={"Retry-After": "2.5"}))

    with pytest.raises(NotFound) as gone:
        call(server, lambda api: api.image(7))
    assert gone.value.message == (
        f"Reading the image: {HOST} has no such thing (perhaps it was deleted meanwhile): "
        "no image 7 (NOT_FOUND)."
    )
    with pytest.raises(Conflict, match="reported a conflict: a GC run is in progress"):
        call(server, lambda api: api.run_gc("acme"))
    with pytest.raises(ServiceUnavailable) as busy:
        call(server, lambda api: api.storage("acme"))
    assert busy.value.retry_after == 1.0
    assert busy.value.status == 503
    assert "busy or unavailable; try again later: the database is busy" in busy.value.message
    with pytest.raises(ServiceUnavailable) as limited:
        call(server, lambda api: api.gc_status("acme"))
    assert limited.value.retry_after == 2.5
    assert "rate-limiting" in limited.value.message


def test_error_bodies_that_are_not_json_still_give_a_sentence() -> None:
    server = FakeBerth()
    server.on("GET", "/images/7/tags", httpx.Response(502, text="<html>Bad Gateway</html>"))
    server.on("GET", "/images/8", httpx.Response(404, text="Not Found"))
    server.on("GET", "/images/9", httpx.Response(418, json={"error": "a plain string"}))
    with pytest.raises(ServiceUnavailable) as proxy:
        call(server, lambda api: api.tags(7))
    assert proxy.value.message == (
        f"Listing tags: {HOST} is unreachable behind its proxy (bad gateway)."
    )
    assert proxy.value.code is None
    with pytest.raises(NotFound, match="no such thing"):
        call(server, lambda api: api.image(8))
    with pytest.raises(ServerError) as odd:
        call(server, lambda api: api.image(9))
    assert type(odd.value) is ServerError
    assert odd.value.message == f"Reading the image: {HOST} answered HTTP 418."


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON that is not an object"),
        (b'{"items": [{"digest": "sha256:00"}]}', "tag: field 'name' is missing"),
        (b'{"items": [{"name": 5, "digest": "d"}]}', "tag: field 'name' is missing or not"),
        (b'{"items": ["v1"]}', "tag: expected a JSON object, got str"),
    ],
)
def test_answers_that_are_not_the_right_json_are_protocol_errors(
    body: bytes, complaint: str
) -> None:
    server = FakeBerth()
    server.on("GET", "/images/7/tags", httpx.Response(200, content=body))
    with pytest.raises(ProtocolError, match=complaint) as caught:
        call(server, lambda api: api.tags(7))
    assert caught.value.message.startswith(("Listing tags: ", "tag: "))


def test_malformed_details_are_protocol_errors_not_crashes() -> None:
    server = FakeBerth()
    server.on("GET", "/me", httpx.Response(200, json={"user": "alice", "workspaces": []}))
    server.on(
        "GET", "/images/7", httpx.Response(200, json={"id": 7, "name": "x", "full_name": "x"})
    )
    server.on("GET", "/workspaces/acme/gc", httpx.Response(200, json={"review_delay_s": "soon"}))
    with pytest.raises(ProtocolError, match=r"me\.user: expected a JSON object"):
        call(server, lambda api: api.me())
    with pytest.raises(ProtocolError, match="image: field 'full_name'"):
        call(server, lambda api: api.image(7))
    with pytest.raises(ProtocolError, match="gc status: field 'review_delay_s'"):
        call(server, lambda api: api.gc_status("acme"))


def test_the_storage_overview_is_read_as_one_answer() -> None:
    """One request gives the figures, GC status and history; a part missing or of the
    wrong shape is a ProtocolError naming it."""
    server = FakeBerth()
    run = {"id": 3, "triggers": ["manual"], "started_at": "2026-01-02T03:04:05Z",
           "bytes_freed": 40}  # fmt: skip
    server.on(
        "GET",
        "/workspaces/acme/storage/overview",
        httpx.Response(
            200,
            json={
                "storage": {"stored": 100, "pending": 0, "repositories": [{"slug": "web"}]},
                "gc": {"pending_bytes": 0, "review_delay_s": 300, "recent_runs": [run]},
                "history": {
                    "samples": [{"at": "2026-01-02T03:04:06Z", "stored": 100}],
                    "gc_runs": [run],
                },
            },
        ),
    )
    overview = call(server, lambda api: api.storage_overview("acme"))
    assert [r.url.path for r in server.requests] == ["/api/v1/workspaces/acme/storage/overview"]
    assert (overview.storage.stored, overview.storage.pending) == (100, 0)
    assert [r.slug for r in overview.storage.repositories] == ["web"]
    assert overview.gc.review_delay_s == 300
    assert [r.bytes_freed for r in overview.gc.recent_runs] == [40]
    assert overview.history.gc_runs == overview.gc.recent_runs
    assert [s.stored for s in overview.history.samples] == [100]
    for body, complaint in (
        ({"storage": {}, "history": {}}, "gc status: expected a JSON object"),
        ({"storage": [], "gc": {}, "history": {}}, "storage: expected a JSON object"),
        ([], "JSON that is not an object"),
    ):
        server.on("GET", "/workspaces/acme/storage/overview", httpx.Response(200, json=body))
        with pytest.raises(ProtocolError, match=complaint):
            call(server, lambda api: api.storage_overview("acme"))


def test_delete_impact_reads_the_tags_that_go_and_stay() -> None:
    server = FakeBerth()
    answer = {
        "freed": 0, "kept": 10, "freed_blobs": 0, "kept_blobs": 1, "tags": 10,
        "trash_retention_s": 604800.0,
        "staying": [{"image_id": 7, "digest": "sha256:aa", "count": 32, "tags": ["r00", "v1"]}],
    }  # fmt: skip
    route = "/workspaces/acme/storage/delete-impact"
    server.on("POST", route, httpx.Response(200, json=answer))
    impact = call(server, lambda api: api.delete_impact("acme", tags=[(7, "r01")]))
    assert impact.tags == 10
    assert impact.staying == (StayingTags("sha256:aa", 32, ("r00", "v1")),)
    assert impact.trash_retention_s == 604800.0
    # An older server says neither: not known, rather than zero; and it has no trash.
    server.on("POST", route, httpx.Response(200, json={"freed": 1}))
    impact = call(server, lambda api: api.delete_impact("acme", tags=[(7, "r01")]))
    assert (impact.tags, impact.staying, impact.trash_retention_s) == (None, None, 0.0)
    # A count that is not a number is the server's fault, said plainly.
    answer["staying"] = [{"digest": "sha256:aa", "count": "many", "tags": []}]
    server.on("POST", route, httpx.Response(200, json=answer))
    with pytest.raises(ProtocolError, match="tags that stay: field 'count'"):
        call(server, lambda api: api.delete_impact("acme", tags=[(7, "r01")]))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_and_timeouts() -> None:
    async def refused() -> None:
        settings = ConnectionSettings(f"http://127.0.0.1:{_closed_port()}", connect_timeout_s=5)
        async with BerthApi.connect(settings, "alice", "s3cret") as api:
            await api.workspaces()

    with pytest.raises(ConnectionFailed) as caught:
        run(refused())
    assert caught.value.message.startswith("Listing workspaces: 127.0.0.1:")
    assert "refused the connection" in caught.value.message

    def connect_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    server = FakeBerth()
    server.on("GET", "/workspaces/acme/storage", connect_timeout)
    server.on("POST", "/images/7/tags/delete", read_timeout)
    with pytest.raises(ConnectionFailed, match=f"Storage of acme: timed out connecting to {HOST}"):
        call(server, lambda api: api.storage("acme"))
    # A delete whose answer never came: the caller is told it timed out waiting (the
    # tags may or may not be gone; the window lists them again).
    with pytest.raises(ConnectionFailed, match="Deleting 2 tags: timed out waiting for an answer"):
        call(server, lambda api: api.delete_tags(IMAGE7, ["a", "b"]))
    assert len(server.requests) == 2  # no retry of a delete behind the caller's back


# --- paging ---------------------------------------------------------------------------


def test_tags_pass_cursor_sort_filter_and_limit_and_parse_the_page() -> None:
    server = FakeBerth()

    def tags(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        if params.get("cursor") == "c2":
            return httpx.Response(200, json={"items": [tag_json("v3")], "next_cursor": None})
        items = [tag_json("v1", other_tags=["latest"], other_tag_count=4), tag_json("v2")]
        return httpx.Response(200, json={"items": items, "next_cursor": "c2", "total": 3})

    server.on("GET", "/images/7/tags", tags)

    async def scenario(api: BerthApi) -> list[Page[Any]]:
        first = await api.tags(7, q="v", sort="-size", limit=2)
        return [first, await api.tags(7, sort="-size", limit=2, cursor=first.next_cursor)]

    first, last = call(server, scenario)
    assert [dict(r.url.params) for r in server.requests] == [
        {"q": "v", "sort": "-size", "limit": "2"},  # no empty cursor sent
        {"sort": "-size", "limit": "2", "cursor": "c2"},
    ]
    assert [t.name for t in first.items] == ["v1", "v2"]
    assert first.next_cursor == "c2"
    assert first.total == 3
    v1 = first.items[0]
    assert v1.other_tags == ("latest",)
    assert v1.other_tag_count == 4
    assert v1.size == 1234
    assert v1.created is not None
    assert v1.created.isoformat() == "2026-01-02T03:04:05+00:00"
    assert [t.name for t in last.items] == ["v3"]
    assert last.next_cursor is None
    assert last.total == 1  # no total given: the page's own count


def test_all_pages_follows_cursors_and_stops() -> None:
    pages = {None: (["acme", "beta"], "p2"), "p2": (["gamma"], "p3"), "p3": ([], "p4")}
    server = FakeBerth()

    def workspaces(request: httpx.Request) -> httpx.Response:
        slugs, cursor = pages[request.url.params.get("cursor")]
        items = [{"slug": s, "name": s.title(), "role": "admin"} for s in slugs]
        return httpx.Response(200, json={"items": items, "next_cursor": cursor})

    server.on("GET", "/workspaces", workspaces)
    found = call(server, lambda api: api.workspaces())
    assert [w.slug for w in found] == ["acme", "beta", "gamma"]
    # An empty page ends the list even with a cursor (no loop on a broken server).
    assert [r.url.params.get("cursor") for r in server.requests] == [None, "p2", "p3"]
    assert all(r.url.params["limit"] == "1000" for r in server.requests)


def test_a_cursor_that_repeats_is_a_protocol_error_not_an_endless_loop() -> None:
    server = FakeBerth()
    server.on(
        "GET", "/workspaces/acme/projects",
        httpx.Response(200, json={"items": [{"key": "P", "name": "P"}], "next_cursor": "same"}),
    )  # fmt: skip
    with pytest.raises(ProtocolError, match="same cursor again"):
        call(server, lambda api: api.projects("acme"))
    assert len(server.requests) == 2


def test_names_in_paths_are_quoted() -> None:
    server = FakeBerth()
    server.on("DELETE", "/images/7/tags/v1.0_rc-1", httpx.Response(204))
    server.on(
        "GET", "/images/7/manifests/sha256:" + "0" * 64,
        httpx.Response(200, json={"digest": "sha256:" + "0" * 64, "layers": []}),
    )  # fmt: skip

    async def scenario(api: BerthApi) -> None:
        await api.delete_tag(IMAGE7, "v1.0_rc-1")
        detail = await api.manifest(7, "sha256:" + "0" * 64)
        assert detail.layers == ()

    call(server, scenario)
    assert server.requests[1].url.raw_path.decode().endswith("/manifests/sha256%3A" + "0" * 64)


# --- deleting -------------------------------------------------------------------------


def bulk_route(missing: Collection[str] = (), refused: dict[str, str] | None = None) -> Route:
    """POST .../tags/delete as the server answers it: a result per tag."""

    def route(request: httpx.Request) -> httpx.Response:
        names = json.loads(request.content)["tags"]
        results = []
        for name in names:
            if name in (refused or {}):
                results.append({"tag": name, "status": "error", "message": (refused or {})[name]})
            elif name in missing:
                results.append({"tag": name, "status": "not_found", "message": "no such tag"})
            else:
                results.append({"tag": name, "status": "deleted", "message": "deleted"})
        deleted = sum(r["status"] == "deleted" for r in results)
        return httpx.Response(200, json={"results": results, "deleted": deleted})

    return route


def test_bulk_delete_sends_exactly_the_tags_and_reports_each() -> None:
    server = FakeBerth()
    server.on(
        "POST", "/images/7/tags/delete", bulk_route({"gone"}, {"bad name": "not a valid tag name"})
    )
    result = call(server, lambda api: api.delete_tags(IMAGE7, ["v1", "gone", "bad name", "v2"]))
    assert json.loads(server.requests[0].content) == {"tags": ["v1", "gone", "bad name", "v2"]}
    assert [(r.tag, r.status, r.ok) for r in result.results] == [
        ("v1", "deleted", True),
        ("gone", "not_found", False),
        ("bad name", "error", False),
        ("v2", "deleted", True),
    ]
    assert result.results[2].message == "not a valid tag name"
    assert result.deleted == 2


def test_bulk_delete_size_limit_and_an_empty_list_send_nothing() -> None:
    server = FakeBerth()
    server.on("POST", "/images/7/tags/delete", bulk_route())
    too_many = [f"t{i}" for i in range(BULK_DELETE_MAX + 1)]
    with pytest.raises(ValueError, match=f"at most {BULK_DELETE_MAX} tags"):
        call(server, lambda api: api.delete_tags(IMAGE7, too_many))
    empty = call(server, lambda api: api.delete_tags(IMAGE7, []))
    assert empty.results == ()
    assert empty.deleted == 0
    assert server.requests == []
    full = call(server, lambda api: api.delete_tags(IMAGE7, too_many[:BULK_DELETE_MAX]))
    assert full.deleted == BULK_DELETE_MAX
    assert len(server.requests) == 1


def test_bulk_delete_in_chunks_through_the_backend() -> None:
    server = FakeBerth()
    server.on("POST", "/images/7/tags/delete", bulk_route({"t005"}))
    tags = [f"t{i:03d}" for i in range(250)]
    progress: list[tuple[int, int]] = []
    removed: list[str] = []

    async def scenario() -> Any:
        backend = BerthBackend(
            Profile("t", URL, "alice"), "s3cret", transport=httpx.MockTransport(server)
        )
        try:
            job = BulkDelete(
                backend, IMAGE, tags,
                on_progress=lambda d, t: progress.append((d, t)), on_chunk=removed.extend,
            )  # fmt: skip
            return await job.run()
        finally:
            await backend.aclose()

    outcome = run(scenario())
    sent = [json.loads(r.content)["tags"] for r in server.requests]
    assert [len(chunk) for chunk in sent] == [100, 100, 50]  # BerthBackend.bulk_chunk
    assert [t for chunk in sent for t in chunk] == tags  # each once, in order
    assert progress == [(100, 250), (200, 250), (250, 250)]
    assert outcome.gone == ["t005"]
    assert len(outcome.deleted) == 249
    assert sorted(removed) == tags
    assert outcome.failed == []


def test_bulk_delete_stops_at_a_refused_chunk_and_names_every_tag_not_deleted() -> None:
    denied = repository_forbidden(Permission.WRITE, "acme/web", "delete tags")
    calls = 0

    def route(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 2:
            return error(403, "FORBIDDEN", denied.message, denied.detail)
        return bulk_route()(request)

    server = FakeBerth()
    server.on("POST", "/images/7/tags/delete", route)
    tags = [f"t{i:03d}" for i in range(250)]

    async def scenario() -> Any:
        backend = BerthBackend(
            Profile("t", URL, "alice"), "s3cret", transport=httpx.MockTransport(server)
        )
        try:
            return await BulkDelete(backend, IMAGE, tags).run()
        finally:
            await backend.aclose()

    outcome = run(scenario())
    assert len(server.requests) == 2  # the third chunk was never sent
    assert outcome.deleted == tags[:100]
    assert [t for t, _ in outcome.failed] == tags[100:]
    assert isinstance(outcome.stopped_by, PermissionDenied)
    assert outcome.stopped_by.required == "write"
    assert all("write permission on acme/web" in reason for _, reason in outcome.failed)


def test_nothing_is_deleted_without_a_delete_call() -> None:
    """Reading everything (and asking what a delete would free) sends no request that
    changes anything; only the delete methods do, one request each."""
    server = FakeBerth()
    ok = httpx.Response(200, json={"items": [], "next_cursor": None})
    for path in ("/workspaces", "/workspaces/acme/projects", "/workspaces/acme/repositories",
                 "/workspaces/acme/images", "/images/7/tags",
                 "/workspaces/acme/storage/shared-layers"):  # fmt: skip
        server.on("GET", path, ok)
    server.on("GET", "/me", httpx.Response(200, json={"user": {"name": "alice"}, "workspaces": []}))
    server.on(
        "GET",
        "/images/7",
        httpx.Response(200, json={"id": 7, "name": "f", "full_name": "acme/web/f"}),
    )
    server.on(
        "GET", "/images/7/manifests/sha256:00", httpx.Response(200, json={"digest": "sha256:00"})
    )
    for path in ("/workspaces/acme", "/workspaces/acme/storage", "/workspaces/acme/storage/history",
                 "/workspaces/acme/gc"):  # fmt: skip
        server.on("GET", path, httpx.Response(200, json={"slug": "acme"}))
    server.on(
        "POST", "/workspaces/acme/storage/delete-impact", httpx.Response(200, json={"freed": 10})
    )
    server.on("DELETE", "/images/7/tags/v1", httpx.Response(204))
    server.on("DELETE", "/images/7", httpx.Response(204))
    server.on("POST", "/images/7/tags/delete", bulk_route())

    async def read_everything(api: BerthApi) -> None:
        await api.me()
        await api.workspaces()
        await api.workspace("acme")
        await api.projects("acme")
        await api.repositories("acme", "PLATFORM")
        await api.images("acme", repository="web", q="f", sort="name")
        await api.image(7)
        await api.tags(7, sort="-pushed_at")
        await api.manifest(7, "sha256:00")
        impact = await api.delete_impact("acme", tags=[(7, "v1")], images=[7])
        assert impact.freed == 10
        await api.storage("acme")
        await api.shared_layers("acme", repository="web")
        await api.storage_history("acme")
        await api.gc_status("acme")

    call(server, read_everything)
    assert len(server.requests) == 14
    assert server.writes == []
    impact = server.requests[9]
    assert json.loads(impact.content) == {"tags": [{"image_id": 7, "tag": "v1"}], "images": [7]}

    async def delete(api: BerthApi) -> None:
        await api.delete_tag(IMAGE7, "v1")
        await api.delete_tags(IMAGE7, ["v2", "v3"])
        await api.delete_image(IMAGE7)

    call(server, delete)
    assert server.writes == [
        "DELETE /api/v1/images/7/tags/v1",
        "POST /api/v1/images/7/tags/delete",
        "DELETE /api/v1/images/7",
    ]
    # Each names the image it means, so a stale id never reaches another image.
    deletes = [r for r in server.requests if r.method in ("DELETE", "POST")][-3:]
    assert [r.headers.get("If-Match") for r in deletes] == ['"7:acme/web/f"'] * 3


def test_every_error_is_a_client_error() -> None:
    """Callers catch ClientError: nothing the server can answer escapes it."""
    answers = [
        httpx.Response(500, content=b"\x00\x01"),
        httpx.Response(200, content=b'{"items": 5}'),
        httpx.Response(200, json={"items": [{"name": "v", "digest": "d", "size": True}]}),
        httpx.Response(200, headers={"Content-Length": "99"}, content=b"{}"),
        httpx.Response(200, json={"items": [], "next_cursor": 12, "total": "x"}),
    ]
    for answer in answers:
        server = FakeBerth()
        server.on("GET", "/images/7/tags", answer)
        try:
            page = call(server, lambda api: api.tags(7))
        except ClientError:
            continue
        # What parsed is well-typed: wrong optional fields fell back to defaults.
        assert all(isinstance(t.size, int) for t in page.items)
        assert page.next_cursor is None or isinstance(page.next_cursor, str)


def test_times_without_a_zone_are_utc_so_every_time_compares() -> None:
    # An image config's "created" may lack a zone; mixed with zoned times, sorting
    # a tags table by it would raise.
    naive = Tag.parse(tag_json("a", created="2026-01-02T03:04:05"))
    zoned = Tag.parse(tag_json("b"))
    missing = Tag.parse(tag_json("c", created=None))
    assert naive.created is not None
    assert naive.created.isoformat() == "2026-01-02T03:04:05+00:00"
    assert naive.created == zoned.created
    assert missing.created is None
