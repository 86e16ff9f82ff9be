"""uploads to object storage: a staged object's name per chunk

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-11 09:00:00

``upload_sessions.staged_name``: the name, under ``uploads/<session>/``, of the
object holding the bytes staged past an upload's last part. It was the version the
chunk landed as, which two chunks racing on one session both chose: the loser's
clean-up deleted the winner's bytes. Now every chunk names its own. NULL for a row
written before this revision (its bytes are under its version, as before).

Downgrading strands the staged bytes of uploads in progress that have a name: their
next chunk answers 404 and their clients start again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_sessions") as batch:
        batch.add_column(sa.Column("staged_name", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("upload_sessions") as batch:
        batch.drop_column("staged_name")
