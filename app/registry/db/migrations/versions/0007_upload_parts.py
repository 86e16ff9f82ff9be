"""object storage: upload state, objects found by generation

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 01:30:00

Chunked uploads to S3-compatible storage are multipart uploads whose state lives
in the database, so any node can take the next chunk: the multipart upload id and
the generation it writes, the bytes staged past the last part, a version every
chunk bumps, the next part number, and the parts that landed. Objects in a bucket
are keyed by generation, so fsck looks blob rows up by it (an index).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on both dialects (SQLite takes NOT NULL with a default).
    op.add_column("upload_sessions", sa.Column("generation", sa.String(length=36), nullable=True))
    op.add_column("upload_sessions", sa.Column("multipart_id", sa.Text(), nullable=True))
    for column in ("staged", "version"):
        kind = sa.BigInteger() if column == "staged" else sa.Integer()
        op.add_column(
            "upload_sessions", sa.Column(column, kind, nullable=False, server_default="0")
        )
    op.add_column(
        "upload_sessions",
        sa.Column("next_part", sa.Integer(), nullable=False, server_default="1"),
    )
    op.create_table(
        "upload_parts",
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("etag", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["upload_sessions.id"],
            name=op.f("fk_upload_parts_session_id_upload_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "part_number", name=op.f("pk_upload_parts")),
    )
    op.create_index("ix_blobs_generation", "blobs", ["generation"])


def downgrade() -> None:
    op.drop_index("ix_blobs_generation", table_name="blobs")
    op.drop_table("upload_parts")
    with op.batch_alter_table("upload_sessions") as batch:
        for column in ("next_part", "version", "staged", "multipart_id", "generation"):
            batch.drop_column(column)
