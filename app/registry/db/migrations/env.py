"""Alembic environment: always run against the connection the app hands over.

On SQLite, revisions that rebuild a table (Alembic's batch mode: create a copy, copy
the rows, drop the old table, rename the copy) run with foreign keys off, as SQLite's
own procedure for schema changes prescribes: with them on, dropping a parent table
deletes its rows first, which RESTRICT refuses and CASCADE would carry out on the
children. The pragma only takes effect outside a transaction, so it is set before
the migrations begin; afterwards ``foreign_key_check`` must find nothing, or the
upgrade fails instead of leaving a registry with dangling references.
"""

from __future__ import annotations

from alembic import context

from app.registry.db.schema import metadata

connection = context.config.attributes["connection"]
is_sqlite = connection.dialect.name == "sqlite"
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=is_sqlite,
)
if is_sqlite:
    assert not connection.in_transaction(), "migrations must start outside a transaction"
    raw = connection.connection.dbapi_connection
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
            dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if dangling:
                raise RuntimeError(f"migration left dangling references: {dangling[:10]}")
    finally:
        if connection.in_transaction():
            connection.commit()
        raw.execute("PRAGMA foreign_keys=ON")
else:
    with context.begin_transaction():
        context.run_migrations()
