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
        # A linguistic default collation, as on most production servers: Berth must
        # not depend on byte order being the database default.
        url = pg.create_database("berth", icu_locale="en-US")
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
        # The tags that stay on a deleted tag's manifest, counted and named (a window
        # function: the same answer on both dialects).
        image = c.get("/api/v1/workspaces/acme/images").json()["items"][0]
        impact = c.post(
            "/api/v1/workspaces/acme/storage/delete-impact",
            json={"tags": [{"image_id": image["id"], "tag": "v2"}]},
        ).json()
        assert impact["tags"] == 1
        assert impact["staying"] == [
            {"image_id": image["id"], "digest": two.digest, "count": 1, "tags": ["latest"]}
        ]
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


def test_tag_order_and_pages_match_sqlite(pg_registry: RegistryServer) -> None:
    """Tag names compare as bytes on PostgreSQL too (whatever the database's
    collation), so tags/list and the management API order and page as on SQLite."""
    names = ["v1.0", "B", "a", "latest", "c10", "c2", "A", "_under", "b-2", "Z9", "z"]
    image = oci.image([oci.random_layer(10_000, "pg-order")])
    with pg_registry.client("writer") as c:
        for name in names:
            oci.push(c, "acme/web/order", image, name)
        expected = sorted(names, key=lambda t: (t.lower(), t))
        assert c.get("/v2/acme/web/order/tags/list").json()["tags"] == expected
        assert oci.follow_links(c, "/v2/acme/web/order/tags/list?n=3", "tags") == expected

        image_id = next(
            i["id"]
            for i in c.get("/api/v1/workspaces/acme/images", params={"q": "order"}).json()["items"]
        )
        api: list[str] = []
        cursor = ""
        while True:
            page = c.get(
                f"/api/v1/images/{image_id}/tags", params={"limit": 4, "cursor": cursor}
            ).json()
            api += [t["name"] for t in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert api == sorted(names)  # the API's name order: bytes, as on SQLite
