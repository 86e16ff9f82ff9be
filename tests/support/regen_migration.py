"""Regenerate the initial Alembic migration from ``app/registry/db/schema.py``.

Until the first release there is one migration, generated from the schema: after
changing schema.py run ``.venv/bin/python -m tests.support.regen_migration``.
After a release, schema changes get new revisions instead.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from app.registry.db.engine import MIGRATIONS


def main() -> None:
    for old in (MIGRATIONS / "versions").glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'empty.db'}")
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
        engine.dispose()


if __name__ == "__main__":
    main()
