"""Ids are never handed out twice, and a stale id never reaches another image.

SQLite rowids without AUTOINCREMENT handed the highest id to the next new row after
a delete: an event stream that had seen image 21 in acme/web then showed a newer
image 21 of acme/private to readers of acme/web, and ``DELETE /api/v1/images/21``
from a client holding the old id deleted the newer image. These tests run through
the real HTTP APIs and the event stream, on SQLite and on PostgreSQL; the property
test drives random create/delete sequences through the registry's own writes.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.registry.db import schema as s
from tests.support import oci
from tests.support.api import api, as_listed
from tests.support.event_stream import Stream
from tests.support.inprocess import Store
from tests.support.postgres import PostgresServer
from tests.support.registry import RegistryServer, standard_registry

LAYER = oci.random_layer(2_000, "ids-layer")
FIRST = oci.image([LAYER], label="ids-first")
SECOND = oci.image([LAYER, oci.random_layer(2_000, "ids-second")], label="ids-second")

_databases = itertools.count()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresServer
) -> Iterator[RegistryServer]:
    url = None
    if request.param == "postgresql":
        url = postgres.create_database(f"ids{next(_databases)}")
    registry = standard_registry(tmp_path / "data", database_url=url).start()
    try:
        yield registry
    finally:
        registry.stop()


def _image(c: httpx.Client, full_name: str) -> dict[str, object]:
    ws = full_name.split("/")[0]
    items = c.get(f"/workspaces/{ws}/images", params={"limit": 1000}).json()["items"]
    return next(i for i in items if i["full_name"] == full_name)


def _tags(c: httpx.Client, image_id: object) -> dict[str, str]:
    items = c.get(f"/images/{image_id}/tags").json()["items"]
    return {t["name"]: t["digest"] for t in items}


def test_a_freed_image_id_never_carries_another_repositorys_events(
    server: RegistryServer,
) -> None:
    """``reader`` may read acme/web, not acme/api. Its stream saw acme/web/first;
    that image is deleted (it had the highest id) and acme/api/secret is pushed,
    tagged and untagged: none of that reaches the reader."""
    reader = Stream(server, "reader")
    try:
        with server.client("root") as c:
            oci.push(c, "acme/web/first", FIRST, "v1")
        assert [e["tag"] for e in reader.until("pushed")] == ["v1"]
        with api(server) as c:
            first = _image(c, "acme/web/first")
            r = c.delete(f"/images/{first['id']}", headers=as_listed(c, int(str(first["id"]))))
            assert r.status_code == 204
        assert reader.until("image_deleted")[-1]["name"] == "acme/web/first"

        with server.client("root") as c:
            oci.push(c, "acme/api/secret", SECOND, "hidden")
            assert c.delete("/v2/acme/api/secret/manifests/hidden").status_code == 202
            oci.push(c, "acme/web/marker", FIRST, "marker")
        # Everything the reader gets up to the marker's push: the marker alone.
        seen = reader.until("pushed")
        assert [(e["type"], e.get("tag")) for e in seen] == [("pushed", "marker")]
        with api(server) as c:
            secret = _image(c, "acme/api/secret")
        assert secret["id"] != first["id"]
    finally:
        reader.close()


def test_a_stale_image_id_never_deletes_another_image(server: RegistryServer) -> None:
    with server.client("root") as c:
        oci.push(c, "acme/web/old", FIRST, "v1")
    with api(server, "admin") as stale:
        old = _image(stale, "acme/web/old")
    with api(server) as c:
        assert (
            c.delete(f"/images/{old['id']}", headers={"If-Match": old["etag"]}).status_code == 204
        )
        with server.client("root") as oc:
            oci.push(oc, "acme/web/new", SECOND, "v1")
        new = _image(c, "acme/web/new")
    assert new["id"] != old["id"]

    # The client that listed acme/web/old still holds its id and ETag.
    with api(server, "admin") as stale:
        assert (
            stale.delete(f"/images/{old['id']}", headers={"If-Match": old["etag"]}).status_code
            == 404
        )
        headers = {"If-Match": str(old["etag"])}
        assert stale.delete(f"/images/{old['id']}/tags/v1", headers=headers).status_code == 404
        bulk = stale.post(
            f"/images/{old['id']}/tags/delete", json={"tags": ["v1"]}, headers=headers
        )
        assert bulk.status_code == 404
        # Even an id pointed at the newer image with the old image's ETag deletes nothing.
        crafted = stale.delete(f"/images/{new['id']}", headers=headers)
        assert crafted.status_code == 412
        assert crafted.json()["error"]["code"] == "PRECONDITION_FAILED"
        assert crafted.json()["error"]["detail"]["etag"] == new["etag"]
        # And a delete that names no image at all is refused before it touches one.
        for response in (
            stale.delete(f"/images/{new['id']}"),
            stale.delete(f"/images/{new['id']}/tags/v1"),
            stale.post(f"/images/{new['id']}/tags/delete", json={"tags": ["v1"]}),
        ):
            assert response.status_code == 428, response.text
            assert response.json()["error"]["code"] == "PRECONDITION_REQUIRED"
        assert _tags(stale, new["id"]) == {"v1": SECOND.digest}
    with server.client("root") as c:
        assert c.get("/v2/acme/web/new/manifests/v1").status_code == 200

    with api(server, "admin") as c:
        r = c.get(f"/images/{new['id']}")
        assert r.headers["ETag"] == new["etag"] == f'"{new["id"]}:acme/web/new"'
        assert (
            c.delete(f"/images/{new['id']}", headers={"If-Match": r.headers["ETag"]}).status_code
            == 204
        )
    with server.client("root") as c:
        assert c.get("/v2/acme/web/new/manifests/v1").status_code == 404


def test_a_tag_pushed_again_since_it_was_listed_is_left_alone(server: RegistryServer) -> None:
    with server.client("root") as c:
        for tag in ("a", "b", "c"):
            oci.push(c, "acme/web/app", FIRST, tag)
    with api(server, "writer") as c:
        app = _image(c, "acme/web/app")
        listed = _tags(c, app["id"])
        etag = {"If-Match": str(app["etag"])}
        with server.client("root") as oc:  # someone moves a and b meanwhile
            oci.push(oc, "acme/web/app", SECOND, "a")
            oci.push(oc, "acme/web/app", SECOND, "b")
        moved = c.delete(
            f"/images/{app['id']}/tags/a", params={"digest": listed["a"]}, headers=etag
        )
        assert moved.status_code == 412
        assert moved.json()["error"]["detail"] == {
            "tag": "a",
            "digest": SECOND.digest,
            "expected": FIRST.digest,
        }
        bulk = c.post(
            f"/images/{app['id']}/tags/delete",
            json={"tags": [{"name": n, "digest": listed[n]} for n in ("b", "c")]},
            headers=etag,
        )
        assert bulk.status_code == 200
        assert [(r["tag"], r["status"]) for r in bulk.json()["results"]] == [
            ("b", "changed"),
            ("c", "deleted"),
        ]
        assert _tags(c, app["id"]) == {"a": SECOND.digest, "b": SECOND.digest}


# --- the property: across any sequence of creates and deletes --------------------------

NAMES = ("acme/web/a", "acme/web/b", "acme/api/c")
IMAGES = (FIRST, SECOND, oci.image([oci.random_layer(1_500, "ids-third")], label="ids-third"))
TAGS = ("t1", "t2", "t3")
TRACKED = (s.images, s.manifests, s.tags, s.blobs)

Op = tuple[str, int, int, int]
ops = st.lists(
    st.tuples(
        st.sampled_from(["push", "untag", "delete_image", "gc"]),
        st.integers(0, len(NAMES) - 1),
        st.integers(0, len(TAGS) - 1),
        st.integers(0, len(IMAGES) - 1),
    ),
    min_size=1,
    max_size=25,
)


class Ledger:
    """Every id each table has handed out, and which are alive now."""

    def __init__(self) -> None:
        self.ever: dict[str, set[int]] = {t.name: set() for t in TRACKED}
        self.alive: dict[str, set[int]] = {t.name: set() for t in TRACKED}

    def check(self, store: Store) -> None:
        with store.reg.db.read() as conn:
            for table in TRACKED:
                now = set(conn.execute(select(table.c.id)).scalars())
                born = now - self.alive[table.name]
                reused = born & self.ever[table.name]
                assert not reused, f"{table.name} handed out {sorted(reused)} again"
                self.ever[table.name] |= now
                self.alive[table.name] = now


def _apply(store: Store, op: Op) -> None:
    kind, n, t, i = op
    name = NAMES[n]
    if kind == "push":
        store.push(name, IMAGES[i], TAGS[t])
        return
    image = store.find_image(name)
    if image is None:
        return
    if kind == "untag":
        with store.reg.db.read() as conn:
            tags = set(
                conn.execute(select(s.tags.c.name).where(s.tags.c.image_id == image.id)).scalars()
            )
        if TAGS[t] in tags:
            store.delete_tag(name, TAGS[t])
    elif kind == "delete_image":
        store.delete_image(name)
    else:
        store.advance(10 * store.grace)
        store.gc(name.split("/")[0], ignore_delay=True)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, seeded registry database, copied for each example (migrating
    anew per example would dominate the test's time)."""
    data = tmp_path_factory.mktemp("ids-template")
    Store(data).close()
    return data / "registry.db"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=ops)
def test_no_id_is_handed_out_twice_on_sqlite(
    sequence: list[Op], template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = tmp_path_factory.mktemp("ids")
    shutil.copy(template, data / "registry.db")
    store = Store(data, seed_accounts=False)
    ledger = Ledger()
    try:
        ledger.check(store)
        for op in sequence:
            _apply(store, op)
            ledger.check(store)
    finally:
        store.close()


@pytest.fixture(scope="module")
def pg_store(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, Ledger]]:
    """One PostgreSQL registry for every example: the property holds over its whole
    life, so the ledger carries across examples."""
    url = postgres.create_database("ids_property")
    store = Store(tmp_path_factory.mktemp("ids-pg"), database_url=url)
    try:
        yield store, Ledger()
    finally:
        store.close()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=ops)
def test_no_id_is_handed_out_twice_on_postgresql(
    sequence: list[Op], pg_store: tuple[Store, Ledger]
) -> None:
    store, ledger = pg_store
    ledger.check(store)
    for op in sequence:
        _apply(store, op)
        ledger.check(store)
