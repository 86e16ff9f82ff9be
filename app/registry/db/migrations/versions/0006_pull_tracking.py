"""pull tracking: last pulled time per tag and per manifest

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 10:00:00

``manifests.last_pulled_at``: the last GET/HEAD of the manifest by any reference
(a tag or its digest); ``tags.last_pulled_at``: the last GET/HEAD by this tag name
while the tag pointed at its current manifest (a push that moves the tag clears it).
Both are written in batches by each serve process (app.registry.pulls).

The setting ``pulls_tracked_since`` records when tracking began: pulls before it
were never seen, so cleanup rules about pulls count no tag as unpulled for longer
than that (an upgraded registry must not look as if nothing had ever been pulled).
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("manifests", sa.Column("last_pulled_at", sa.BigInteger(), nullable=True))
    op.add_column("tags", sa.Column("last_pulled_at", sa.BigInteger(), nullable=True))
    settings = sa.table("settings", sa.column("key", sa.String), sa.column("value", sa.Text))
    op.bulk_insert(
        settings, [{"key": "pulls_tracked_since", "value": str(int(time.time() * 1000))}]
    )


def downgrade() -> None:
    op.execute("DELETE FROM settings WHERE key = 'pulls_tracked_since'")
    # A plain DROP COLUMN (SQLite 3.35+): a batch rebuild of tags would lose the
    # expression index Alembic cannot reflect.
    op.execute("ALTER TABLE tags DROP COLUMN last_pulled_at")
    op.execute("ALTER TABLE manifests DROP COLUMN last_pulled_at")
