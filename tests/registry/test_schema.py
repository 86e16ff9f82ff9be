"""The metadata schema: the migration builds what schema.py declares (Alembic's
autogenerate cannot see expression indexes on SQLite, so drift would go unnoticed),
and the listings that must stay fast with 100,000 tags are index ranges, not sorts."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.dialects import sqlite

from app.registry import content
from app.registry.db.engine import Database
from app.registry.db.schema import metadata


def _shape(engine: Engine) -> set[tuple[str, ...]]:
    """Tables with their columns, and indexes with the table, columns and expressions
    they cover, as SQLite reports them."""
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
