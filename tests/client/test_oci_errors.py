"""The OCI client against registries that misbehave (httpx.MockTransport): a clear
error of the right class, no crash, and nothing deleted that was not confirmed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from app.client import capabilities as caps
from app.client.errors import (
    Conflict,
    ConnectionFailed,
    DeletesDisabled,
    ProtocolError,
    ServiceUnavailable,
)
from app.client.oci import OciClient
from app.client.oci_delete import delete_image, delete_tag_with_placeholder
from app.client.oci_details import DetailsLoader
from app.client.scan import scan_registry
from app.client.transport import ConnectionSettings
from tests.support import oci

T = TypeVar("T")
IMG = oci.image([oci.random_layer(2_000, "err-a")])
OTHER = oci.image([oci.random_layer(2_000, "err-b")])


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, concurrency: int = 8) -> OciClient:
    return OciClient.connect(
        ConnectionSettings("https://registry.test"),
        transport=httpx.MockTransport(handler),
        concurrency=concurrency,
    )


def manifest_response(img: oci.Image, *, digest: str | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        content=img.manifest.data,
        headers={
            "Content-Type": img.manifest.media_type,
            "Docker-Content-Digest": digest or img.digest,
        },
    )


def recording(
    routes: Callable[[httpx.Request], httpx.Response | None],
) -> tuple[Handler, list[str]]:
    """A handler that records every request and refuses unexpected writes."""
    log: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        log.append(f"{request.method} {request.url.path}")
        answer = routes(request)
        if answer is None:
            return httpx.Response(404, json={"errors": [{"code": "NOT_HERE"}]})
        return answer

    return handler, log


def test_manifest_that_does_not_match_its_digest_is_refused() -> None:
    def routes(request: httpx.Request) -> httpx.Response | None:
        return manifest_response(IMG, digest=OTHER.digest)

    handler, _log = recording(routes)

    async def scenario() -> None:
        async with client(handler) as c:
            await c.get_manifest("team/app", "v1")

    with pytest.raises(ProtocolError, match="does not match its digest"):
        run(scenario())


def test_malformed_json_in_catalog_tags_and_manifest() -> None:
    def routes(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v2/_catalog":
            return httpx.Response(200, content=b'{"repositories": ["a", 3]}')
        if request.url.path.endswith("/tags/list"):
            return httpx.Response(200, content=b"[oops")
        return httpx.Response(200, content=b"{}", headers={"Content-Type": oci.OCI_MANIFEST})

    handler, _log = recording(routes)

    async def scenario(what: str) -> None:
        async with client(handler) as c:
            if what == "catalog":
                await c.all_repositories()
            elif what == "tags":
                await c.all_tags("team/app")
            else:
                await c.get_manifest("team/app", "v1")

    with pytest.raises(ProtocolError, match="not a list of names"):
        run(scenario("catalog"))
    with pytest.raises(ProtocolError, match="not JSON"):
        run(scenario("tags"))
    with pytest.raises(ProtocolError, match="not a manifest Berth understands"):
        run(scenario("manifest"))


def test_pagination_follows_link_and_stops_on_a_repeating_registry() -> None:
    pages = {
        None: (["a", "b"], '</v2/_catalog?n=2&last=b>; rel="next"'),
        "b": (["c"], '</v2/_catalog?n=2&last=c>; rel="next"'),
        "c": (["c"], '</v2/_catalog?n=2&last=c>; rel="next"'),  # a buggy registry
    }

    def routes(request: httpx.Request) -> httpx.Response | None:
        names, link = pages[request.url.params.get("last")]
        return httpx.Response(200, json={"repositories": names}, headers={"Link": link})

    handler, log = recording(routes)
    names = run(_all_repositories(handler))
    assert names == ["a", "b", "c"]
    assert len(log) == 3


async def _all_repositories(handler: Handler) -> list[str]:
    async with client(handler) as c:
        return await c.all_repositories(page_size=2)


def test_emptied_repository_lists_no_tags_and_catalog_off_is_detected() -> None:
    def routes(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v2/_catalog":
            return httpx.Response(404, text="404 page not found")
        if request.url.path == "/v2/team/app/tags/list":
            return httpx.Response(200, json={"name": "team/app", "tags": None})
        if request.method == "DELETE":
            return httpx.Response(405, json={"errors": [{"code": "UNSUPPORTED"}]})
        return None

    handler, log = recording(routes)

    async def scenario() -> tuple[list[str], caps.Capabilities, caps.Capabilities]:
        async with client(handler) as c:
            found = await caps.capabilities(c)
            again = await caps.capabilities(c, "team/app")  # a name added by hand
            assert await caps.capabilities(c) is again  # cached per connection
            return await c.all_tags("team/app"), found, again

    tags, found, again = run(scenario())
    assert tags == []
    assert not found.catalog
    assert found.deletes is None  # no repository known yet: unknown, not "no"
    assert "add repository names by hand" in found.notes[0]
    assert again.deletes is False
    assert again.referrers is None
    assert any("turned off" in n for n in again.notes)
    # The only DELETE was the probe of a tag that cannot exist.
    deletes = [line for line in log if line.startswith("DELETE")]
    assert len(deletes) == 1
    assert "/manifests/berth-probe-" in deletes[0]


def test_nothing_deleted_when_the_tag_moved_or_deletes_are_off() -> None:
    def routes(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v2/_catalog":
            return httpx.Response(200, json={"repositories": ["team/app"]})
        if request.method == "DELETE" and "berth-probe-" in request.url.path:
            return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID"}]})
        if request.method == "GET" and "/manifests/" in request.url.path:
            return manifest_response(OTHER)  # the tag moved after the admin confirmed
        return None

    handler, log = recording(routes)

    async def scenario() -> None:
        async with client(handler) as c:
            await delete_tag_with_placeholder(c, "team/app", "v1", expected_digest=IMG.digest)

    with pytest.raises(Conflict, match="nothing was deleted"):
        run(scenario())
    writes = [x for x in log if x.split()[0] in ("PUT", "POST", "PATCH")]
    assert writes == []
    assert [x for x in log if x.startswith("DELETE")] == [x for x in log if "berth-probe-" in x]

    def disabled(request: httpx.Request) -> httpx.Response | None:
        if request.method == "DELETE":
            return httpx.Response(405, json={"errors": [{"code": "UNSUPPORTED"}]})
        if request.url.path == "/v2/_catalog":
            return httpx.Response(200, json={"repositories": ["team/app"]})
        return None

    handler, log = recording(disabled)
    with pytest.raises(DeletesDisabled, match=r"storage\.delete\.enabled"):
        run(scenario())
    assert not [x for x in log if x.split()[0] in ("PUT", "POST")]


def test_placeholder_delete_refused_afterwards_puts_the_tag_back() -> None:
    state = {"v1": IMG.manifest.data}

    def routes(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path
        if path == "/v2/_catalog":
            return httpx.Response(200, json={"repositories": ["team/app"]})
        if request.method == "DELETE" and "berth-probe-" in path:
            return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID"}]})
        if request.method == "DELETE":
            return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE"}]})
        if request.method == "HEAD" and "/blobs/" in path:
            return httpx.Response(200)
        if request.method == "PUT" and path == "/v2/team/app/manifests/v1":
            state["v1"] = request.content
            return httpx.Response(201)
        if request.method == "GET" and path == "/v2/team/app/manifests/v1":
            body = state["v1"]
            return httpx.Response(200, content=body, headers={"Content-Type": oci.OCI_MANIFEST})
        return None

    handler, _log = recording(routes)

    async def scenario() -> None:
        async with client(handler) as c:
            await delete_tag_with_placeholder(c, "team/app", "v1", expected_digest=IMG.digest)

    with pytest.raises(ServiceUnavailable, match="was put back on"):
        run(scenario())
    assert state["v1"] == IMG.manifest.data


def test_details_of_a_broken_tag_come_back_as_an_error_row() -> None:
    def routes(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path
        if path.endswith("/manifests/good"):
            return manifest_response(IMG)
        if path.endswith("/manifests/slow"):
            raise httpx.ReadTimeout("slow", request=request)
        if "/blobs/" in path:
            blob = next(b for b in IMG.blobs if b.digest in path)
            return httpx.Response(200, content=blob.data)
        return None

    handler, _log = recording(routes)

    async def scenario() -> dict[str, object]:
        async with client(handler) as c:
            rows = DetailsLoader(c).iter_tags("team/app", ["good", "slow", "gone"])
            return {r.tag: r.details or r.error async for r in rows}

    rows = run(scenario())
    assert getattr(rows["good"], "digest", None) == IMG.digest
    assert isinstance(rows["slow"], ConnectionFailed)
    assert "timed out" in str(rows["slow"])
    assert "gone" in rows
    assert not hasattr(rows["gone"], "digest")


def _one_repository(tags: list[str]) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
    """A registry holding team/app with ``tags``, all on IMG, answering after 1 ms."""

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.001)
        path = request.url.path
        if path == "/v2/_catalog":
            return httpx.Response(200, json={"repositories": ["team/app"]})
        if path.endswith("/tags/list"):
            return httpx.Response(200, json={"tags": tags})
        if "/manifests/" in path:
            return manifest_response(IMG)
        blob = next(b for b in IMG.blobs if b.digest in path)
        return httpx.Response(200, content=blob.data)

    return answer


def test_concurrency_is_bounded_and_a_cancelled_scan_leaves_nothing_running() -> None:
    in_flight = 0
    peak = 0
    answer = _one_repository([f"t{i}" for i in range(40)])

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await answer(request)
        finally:
            in_flight -= 1

    async def scenario() -> None:
        c = OciClient.connect(
            ConnectionSettings("https://registry.test"),
            transport=httpx.MockTransport(handler),
            concurrency=3,
        )
        async with c:
            scan = await scan_registry(c)
            assert len(scan.tags) == 40
            assert peak <= 3
            task = asyncio.create_task(scan_registry(c))
            await asyncio.sleep(0.005)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []

    run(scenario())


def test_a_scan_whose_progress_report_fails_stops_its_workers_at_once() -> None:
    """The scan's details workers end with the scan, also when the loop over their
    rows ends by an error: nothing keeps reading the registry after it."""
    handler = _one_repository([f"t{i}" for i in range(40)])

    def progress(p: object) -> None:
        if getattr(p, "tags_done", 0) >= 1:
            raise RuntimeError("the progress display went away")

    async def scenario() -> None:
        async with client(handler, concurrency=3) as c:
            with pytest.raises(RuntimeError, match="went away") as failed:
                await scan_registry(c, ["team/app"], progress=progress)
            # Checked before the loop runs again, while the error is still held.
            workers = [t for t in asyncio.all_tasks() if t.get_name().startswith("oci-details")]
            assert [t for t in workers if not t.done()] == [], failed.value

    run(scenario())


def test_image_delete_reports_each_digest() -> None:
    def routes(request: httpx.Request) -> httpx.Response | None:
        if IMG.digest in request.url.path:
            return httpx.Response(202)
        if OTHER.digest in request.url.path:
            return httpx.Response(500, text="boom")
        return None

    handler, log = recording(routes)
    gone = "sha256:" + "0" * 64

    async def scenario() -> None:
        async with client(handler) as c:
            result = await delete_image(c, "team/app", [IMG.digest, OTHER.digest, gone])
            assert result.deleted == [IMG.digest]
            assert result.missing == [gone]
            assert isinstance(result.failed[OTHER.digest], ServiceUnavailable)
            assert not result.complete

    run(scenario())
    assert len(log) == 3
    assert all(line.startswith("DELETE /v2/team/app/manifests/sha256:") for line in log)
