"""The metadata schema: the migration builds what schema.py declares (Alembic's
autogenerate cannot see expression indexes on SQLite, so drift would go unnoticed),
and the listings that must stay fast with 100,000 tags are index ranges, not sorts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import sqlite

from app.registry import accounts, content
from app.registry.db.engine import MIGRATIONS, Database
from app.registry.db.schema import metadata
from app.registry.gc import fsck
from app.registry.server import create_app
from tests.support import oci
from tests.support.inprocess import Store


def _shape(engine: Engine) -> set[tuple[str, ...]]:
    """Tables with their columns, foreign keys (with their ON DELETE) and whether
    their ids autoincrement, and indexes with the table, columns and expressions they
    cover, as SQLite reports them."""
    shape: set[tuple[str, ...]] = set()
    with engine.connect() as conn:
        objects = conn.execute(
            text(
                "SELECT type, name, tbl_name FROM sqlite_master "
                "WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' "
                "AND name != 'alembic_version'"
            )
        ).all()
        for kind, name, table in objects:
            if kind == "table":
                columns = conn.execute(text(f"PRAGMA table_info('{name}')")).all()
                shape.add(("table", name, *(f"{c.name} {c.type} {c.notnull}" for c in columns)))
                for fk in conn.execute(text(f"PRAGMA foreign_key_list('{name}')")):
                    shape.add(("fk", name, fk[3], fk.table, fk.to, fk.on_delete))
                sql = conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": name}
                ).scalar_one()
                if "AUTOINCREMENT" in sql:
                    shape.add(("autoincrement", name))
            else:
                keys = conn.execute(text(f"PRAGMA index_xinfo('{name}')")).all()
                # cid -2 is an expression: its text is not reported, its place is.
                cols = tuple(str(k.name) if k.cid >= 0 else "<expr>" for k in keys if k.key)
                shape.add(("index", name, table, *cols))
    return shape


def test_migration_builds_the_declared_schema(tmp_path: Path) -> None:
    migrated = Database(f"sqlite:///{tmp_path / 'migrated.db'}")
    migrated.migrate()
    declared = create_engine(f"sqlite:///{tmp_path / 'declared.db'}")
    metadata.create_all(declared)
    try:
        ours, theirs = _shape(migrated.engine), _shape(declared)
        assert ("index", "ix_tags_image_lower_name", "tags", "image_id", "<expr>", "name") in ours
        assert ("autoincrement", "images") in ours
        assert ("fk", "manifests", "image_id", "images", "id", "RESTRICT") in ours
        assert ours == theirs
    finally:
        migrated.dispose()
        declared.dispose()


def test_tags_list_pages_are_index_ranges(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    db.migrate()
    try:
        with db.engine.connect() as conn:
            for last in (None, "v1.2.3"):
                query = content.tags_list_query(7, 1001, last)
                sql = query.compile(
                    dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
                )
                plan = " | ".join(
                    row.detail for row in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
                )
                assert "ix_tags_image_lower_name" in plan, plan
                assert "TEMP B-TREE" not in plan, plan  # no sort of every tag per page
                if last is not None:
                    assert "<expr>>?" in plan, plan  # starts at `last`, not at the first tag
    finally:
        db.dispose()


async def _page_through(store: Store, image_id: int) -> None:
    """Two pages of two tags in every order the API offers, checked for order."""
    transport = httpx.ASGITransport(app=create_app(store.reg))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://berth", auth=("root", "a-password")
    ) as client:
        url = f"/api/v1/images/{image_id}/tags"
        for sort in ("name", "-name", "size", "-size", "created", "-created", "pushed_at"):
            first = await client.get(url, params={"sort": sort, "limit": 2})
            assert first.status_code == 200, first.text
            cursor = first.json()["next_cursor"]
            rest = await client.get(url, params={"sort": sort, "limit": 2, "cursor": cursor})
            rows = first.json()["items"] + rest.json()["items"]
            assert sorted(t["name"] for t in rows) == ["a", "b", "c", "d"], sort
            if sort.endswith("size"):
                sizes = [t["size"] for t in rows]
                assert sizes == sorted(sizes, reverse=sort.startswith("-"))


def test_tag_pages_in_every_order_are_index_ranges(tmp_path: Path) -> None:
    """The management API's tags listing, run in process with its SQL captured: in
    every order, first page and next, no statement sorts the image's tags."""
    store = Store(tmp_path / "data")
    try:
        with store.reg.db.write() as conn:
            accounts.add_user(conn, "root", "a-password", superuser=True)
        small = oci.image([oci.random_layer(1_000, "small")])
        large = oci.image([oci.random_layer(9_000, "large")])
        for tag, img in (("a", large), ("b", small), ("c", large), ("d", small)):
            store.push("acme/web/app", img, tag)
        image = store.find_image("acme/web/app")
        assert image is not None
        image_id = image.id
        statements: list[tuple[str, object]] = []

        def capture(_conn: object, _cursor: object, sql: str, params: object, *_: object) -> None:
            if "FROM tags" in sql and "ORDER BY" in sql:
                statements.append((sql, params))

        event.listen(store.reg.db.engine, "before_cursor_execute", capture)
        asyncio.run(_page_through(store, image_id))
        event.remove(store.reg.db.engine, "before_cursor_execute", capture)

        pages = [(sql, params) for sql, params in statements if "LIMIT" in sql]
        assert len(pages) == 14
        with store.reg.db.engine.connect() as conn:
            for sql, params in pages:
                plan = " | ".join(
                    row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
                )
                assert "TEMP B-TREE" not in plan, (sql, plan)
    finally:
        store.close()


def _tag_rows(db: Database) -> list[tuple[object, ...]]:
    with db.engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                text(
                    "SELECT name, manifest_id, manifest_size, manifest_created FROM tags "
                    "ORDER BY name"
                )
            )
        ]


def test_upgrading_a_registry_from_0001_fills_the_sort_keys(tmp_path: Path) -> None:
    """Data made before revision 0002 (here: made now, then downgraded) gets the
    same copies of its manifests' sizes and creation dates that new tags get."""
    store = Store(tmp_path / "data")
    small = oci.image([oci.random_layer(1_000, "up-small")])
    large = oci.image([oci.random_layer(9_000, "up-large")])
    for tag, img in (("a", large), ("b", small), ("c", large)):
        store.push("acme/web/app", img, tag)
    before = _tag_rows(store.reg.db)
    assert {r[2] for r in before} == {small.compressed_size, large.compressed_size}
    url = store.reg.db.url
    store.close()

    db = Database(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
        conn.commit()
        columns = {c.name for c in conn.execute(text("PRAGMA table_info('tags')"))}
        assert "manifest_size" not in columns
    db.migrate()
    try:
        assert _tag_rows(db) == before
    finally:
        db.dispose()


def _counters(db: Database) -> tuple[list[tuple[object, ...]], ...]:
    with db.engine.connect() as conn:
        return (
            [tuple(r) for r in conn.execute(text("SELECT id, holders FROM manifests ORDER BY id"))],
            [
                tuple(r)
                for r in conn.execute(
                    text("SELECT image_id, blob_id, refs FROM blob_usage ORDER BY 1, 2")
                )
            ],
            [tuple(r) for r in conn.execute(text("SELECT id, image_refs FROM blobs ORDER BY id"))],
        )


def test_upgrading_a_registry_from_0010_counts_its_references(tmp_path: Path) -> None:
    """Revision 0011 fills the incrementally kept counters from a full walk of data
    made before it (here: made now, downgraded to 0010), and pushes and deletes go on
    from them."""
    store = Store(tmp_path / "data")
    base = oci.random_layer(1_000, "up3-base")
    amd = oci.image([base, oci.random_layer(500, "up3-amd")], arch="amd64")
    arm = oci.image([base, oci.random_layer(500, "up3-arm")], arch="arm64")
    store.push("acme/web/app", oci.index([amd, arm]), "multi")
    subject = oci.image([base], label="subject")
    store.push("acme/web/app", subject, "v1")
    store.push("acme/web/app", subject, "v1-again")
    sig = oci.image([oci.random_layer(50, "up3-sig")], label="sig", subject=subject.manifest)
    store.push("acme/web/app", sig)
    store.push("acme/api/other", oci.image([base], label="other"), "v1")
    store.push("acme/web/app", oci.image([base], label="untagged"), "gone")
    store.delete_tag("acme/web/app", "gone")
    before = _counters(store.reg.db)
    assert [h for _m, h in before[0]].count(0) == 1  # only the manifest of "gone" is dead
    url = store.reg.db.url
    store.close()

    db = Database(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
        conn.commit()
        assert "holders" not in {
            c.name for c in conn.execute(text("PRAGMA table_info('manifests')"))
        }
        # Derived rows an older registry let drift: the upgrade rebuilds them.
        conn.execute(text("UPDATE blobs SET image_refs = 9"))
        conn.execute(text("DELETE FROM blob_usage WHERE image_id = 2"))
        conn.commit()
    db.migrate()
    db.dispose()
    assert _counters(Database(url)) == before

    store = Store(tmp_path / "data", seed_accounts=False)
    try:
        store.delete_tag("acme/web/app", "v1")
        store.delete_tag("acme/web/app", "v1-again")  # the subject dies, and its referrer
        store.delete_tag("acme/web/app", "multi")
        report = fsck.check(store.reg, orphan_min_age_ms=0)
        assert report.clean, report.lines()
        with store.reg.db.read() as conn:
            # Only acme/api/other's tag holds anything now: its manifest, config and base.
            assert conn.execute(text("SELECT sum(holders) FROM manifests")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM blob_usage")).scalar() == 2
    finally:
        store.close()
