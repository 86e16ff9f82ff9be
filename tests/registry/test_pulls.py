"""Pull tracking through a real registry: manifest GET/HEAD by tag or digest counts,
blob GETs don't; times are written in batches and shown in the API's tag rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from app.registry.api.times import parse_iso
from tests.support import oci
from tests.support.api import api
from tests.support.registry import RegistryServer, standard_registry

FLUSH = ["--pull-flush-interval", "0.2"]
NAME = "acme/web/frontend"


def _tags(server: RegistryServer) -> dict[str, dict[str, Any]]:
    with api(server) as c:
        items = c.get("/workspaces/acme/images", params={"q": "frontend"}).json()["items"]
        rows = c.get(f"/images/{items[0]['id']}/tags").json()["items"]
    return {row["name"]: row for row in rows}


def _wait_for(fn: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, "the expected state never came"
        time.sleep(0.05)


def _images() -> tuple[oci.Image, oci.Image]:
    base = oci.random_layer(2000, "base")
    return (
        oci.image([base, oci.random_layer(2000, "one")], label="one"),
        oci.image([base, oci.random_layer(2000, "two")], label="two"),
    )


def test_pulls_by_tag_and_digest_are_recorded_blob_gets_are_not(
    registry_factory: Callable[..., RegistryServer],
) -> None:
    server = registry_factory(extra_args=FLUSH)
    one, two = _images()
    accept = {"Accept": oci.OCI_MANIFEST}
    with server.client("root") as c:
        oci.push(c, NAME, one, "a")
        oci.push(c, NAME, one, "b")
        oci.push(c, NAME, two, "c")
        oci.push(c, NAME, two, "d")
        # d: only its blobs are fetched, which is not a pull of the image.
        for blob in two.blobs:
            assert c.get(f"/v2/{NAME}/blobs/{blob.digest}").status_code == 200
        assert all(row["digest_last_pulled"] is None for row in _tags(server).values())
        before = int(time.time() * 1000)
        assert c.get(f"/v2/{NAME}/manifests/a", headers=accept).status_code == 200
        assert c.head(f"/v2/{NAME}/manifests/{two.digest}", headers=accept).status_code == 200
        after = int(time.time() * 1000)

    _wait_for(lambda: _tags(server)["c"]["digest_last_pulled"] is not None)
    rows = _tags(server)
    assert rows["a"]["last_pulled"] is not None
    assert before <= parse_iso(rows["a"]["last_pulled"]) <= after
    # b shares a's digest: its content was pulled, its name was not.
    assert rows["b"]["last_pulled"] is None
    assert rows["b"]["digest_last_pulled"] == rows["a"]["digest_last_pulled"]
    # c and d: pulled by digest only.
    assert rows["c"]["last_pulled"] is None
    assert rows["d"]["last_pulled"] is None
    assert rows["c"]["digest_last_pulled"] == rows["d"]["digest_last_pulled"]
    assert before <= parse_iso(rows["c"]["digest_last_pulled"]) <= after


def test_a_tag_moved_by_a_push_starts_unpulled(
    registry_factory: Callable[..., RegistryServer],
) -> None:
    server = registry_factory(extra_args=FLUSH)
    one, two = _images()
    with server.client("root") as c:
        oci.push(c, NAME, one, "a")
        assert c.get(f"/v2/{NAME}/manifests/a").status_code == 200
        _wait_for(lambda: _tags(server)["a"]["last_pulled"] is not None)
        oci.push(c, NAME, two, "a")
    row = _tags(server)["a"]
    assert row["digest"] == two.digest
    assert row["last_pulled"] is None
    assert row["digest_last_pulled"] is None


def test_many_pulls_are_one_batch_and_a_clean_stop_writes_it(tmp_path: Path) -> None:
    """With a flush interval far longer than the test, nothing is written while
    pulls go on; SIGTERM writes the batch, with the newest time of each row."""
    server = standard_registry(tmp_path / "r", extra_args=["--pull-flush-interval", "3600"])
    server.start()
    one, _two = _images()
    try:
        with server.client("root") as c:
            oci.push(c, NAME, one, "a")
            for _ in range(50):
                assert c.get(f"/v2/{NAME}/manifests/a").status_code == 200
            last = int(time.time() * 1000)
        assert _tags(server)["a"]["last_pulled"] is None  # still in memory
    finally:
        server.stop()
    server.start()
    try:
        row = _tags(server)["a"]
        assert row["last_pulled"] is not None
        assert last - 5_000 <= parse_iso(row["last_pulled"]) <= last
        assert row["digest_last_pulled"] == row["last_pulled"]
    finally:
        server.stop()


def test_pulls_need_read_and_unknown_references_record_nothing(
    registry_factory: Callable[..., RegistryServer],
) -> None:
    server = registry_factory(extra_args=FLUSH)
    one, _two = _images()
    with server.client("root") as c:
        oci.push(c, NAME, one, "a")
    with httpx.Client(base_url=server.url, auth=("outsider", "correct-horse-battery")) as c:
        assert c.get(f"/v2/{NAME}/manifests/a").status_code in (401, 403, 404)
    with server.client("reader") as c:
        assert c.get(f"/v2/{NAME}/manifests/nope").status_code == 404
        assert c.get(f"/v2/{NAME}/manifests/a").status_code == 200
    _wait_for(lambda: _tags(server)["a"]["last_pulled"] is not None)
