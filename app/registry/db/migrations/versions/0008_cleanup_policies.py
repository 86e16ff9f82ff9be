"""cleanup policies, their previews and runs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 12:00:00

``cleanup_policies`` (one per workspace or repository), ``policy_previews`` with
their ``policy_preview_tags`` (a plan at one moment, which a run executes exactly),
and ``policy_runs`` (at most one running per scope: a partial unique index).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TagName = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")


def _id() -> sa.Column[int]:
    return sa.Column("id", Id, sa.Identity(), primary_key=True)


def _workspace_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace_id"],
        ["workspaces.id"],
        name=f"fk_{table}_workspace_id_workspaces",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "cleanup_policies",
        _id(),
        sa.Column("workspace_id", Id, nullable=False),
        sa.Column("repository_id", Id, nullable=True),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=True),
        sa.Column("next_run_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
        _workspace_fk("cleanup_policies"),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name="fk_cleanup_policies_repository_id_repositories",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_cleanup_policies"),
        sa.UniqueConstraint("scope", name="uq_cleanup_policies_scope"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_cleanup_policies_next_run", "cleanup_policies", ["next_run_at"])
    op.create_table(
        "policy_previews",
        _id(),
        sa.Column("workspace_id", Id, nullable=False),
        sa.Column("repository_id", Id, nullable=True),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("saved", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("image_count", sa.Integer(), nullable=False),
        sa.Column("tag_count", sa.Integer(), nullable=False),
        sa.Column("remove_count", sa.Integer(), nullable=False),
        sa.Column("freed", sa.BigInteger(), nullable=False),
        sa.Column("kept", sa.BigInteger(), nullable=False),
        sa.Column("freed_blobs", sa.Integer(), nullable=False),
        sa.Column("kept_blobs", sa.Integer(), nullable=False),
        sa.Column("plan_ms", sa.Integer(), nullable=False),
        _workspace_fk("policy_previews"),
        sa.PrimaryKeyConstraint("id", name="pk_policy_previews"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_policy_previews_expires", "policy_previews", ["expires_at"])
    op.create_table(
        "policy_preview_tags",
        sa.Column("preview_id", Id, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("image_id", Id, nullable=False),
        sa.Column("repository_id", Id, nullable=False),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("tag", TagName, nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("remove", sa.Boolean(), nullable=False),
        sa.Column("rule", sa.String(300), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("pushed_at", sa.BigInteger(), nullable=False),
        sa.Column("last_pulled", sa.BigInteger(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["preview_id"],
            ["policy_previews.id"],
            name="fk_policy_preview_tags_preview_id_policy_previews",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("preview_id", "position", name="pk_policy_preview_tags"),
    )
    op.create_index(
        "ix_policy_preview_tags_remove",
        "policy_preview_tags",
        ["preview_id", "remove", "position"],
    )
    op.create_table(
        "policy_runs",
        _id(),
        sa.Column("workspace_id", Id, nullable=False),
        sa.Column("repository_id", Id, nullable=True),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("preview_id", Id, nullable=True),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=True),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("tags_planned", sa.Integer(), nullable=False),
        sa.Column("tags_deleted", sa.Integer(), nullable=False),
        sa.Column("tags_changed", sa.Integer(), nullable=False),
        sa.Column("tags_missing", sa.Integer(), nullable=False),
        sa.Column("bytes_freed", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _workspace_fk("policy_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_policy_runs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_policy_runs_workspace", "policy_runs", ["workspace_id", "id"])
    running = sa.text("state = 'running'")
    op.create_index(
        "uq_policy_runs_running",
        "policy_runs",
        ["scope"],
        unique=True,
        sqlite_where=running,
        postgresql_where=running,
    )


def downgrade() -> None:
    op.drop_index("uq_policy_runs_running", table_name="policy_runs")
    op.drop_index("ix_policy_runs_workspace", table_name="policy_runs")
    op.drop_table("policy_runs")
    op.drop_index("ix_policy_preview_tags_remove", table_name="policy_preview_tags")
    op.drop_table("policy_preview_tags")
    op.drop_index("ix_policy_previews_expires", table_name="policy_previews")
    op.drop_table("policy_previews")
    op.drop_index("ix_cleanup_policies_next_run", table_name="cleanup_policies")
    op.drop_table("cleanup_policies")
