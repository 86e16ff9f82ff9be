"""The registry on PostgreSQL (the scale-out metadata store): the same pushes,
pulls, deletes and listings as on SQLite, against a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import oci
from tests.support.postgres import PostgresServer
from tests.support.registry import RegistryServer, standard_registry


@pytest.fixture
def pg_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    pg = PostgresServer()
    server: RegistryServer | None = None
    try:
        url = pg.create_database("berth")
        server = standard_registry(tmp_path / "data", database_url=url).start()
        yield server
    finally:
        if server is not None:
            server.stop()
        pg.stop()


def test_push_pull_delete_on_postgres(pg_registry: RegistryServer) -> None:
    base = oci.random_layer(50_000, "pg-base")
    one = oci.image([base, oci.random_layer(20_000, "pg-1")])
    two = oci.image([base, oci.random_layer(20_000, "pg-2")])
    with pg_registry.client("writer") as c:
        oci.push(c, "acme/web/app", one, "v1")
        oci.push(c, "acme/web/app", two, "v2")
        oci.push(c, "acme/web/app", two, "latest")
        tags = c.get("/v2/acme/web/app/tags/list").json()["tags"]
        assert tags == ["latest", "v1", "v2"]
        got = c.get(f"/v2/acme/web/app/blobs/{base.digest}")
        assert got.status_code == 200
        assert got.content == base.data
        assert c.delete("/v2/acme/web/app/manifests/v2").status_code == 202
        assert c.get("/v2/acme/web/app/manifests/v2").status_code == 404
        latest = c.get("/v2/acme/web/app/manifests/latest")
        assert latest.status_code == 200
        assert latest.headers["docker-content-digest"] == two.digest
        assert (
            c.get("/v2/acme/web/app/tags/list", params={"n": 1})
            .headers["link"]
            .startswith("</v2/acme/web/app/tags/list?n=1&last=latest>")
        )
