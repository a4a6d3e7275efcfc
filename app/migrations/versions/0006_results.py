"""Named and nested artifacts, the result cache, and the completion-callback outbox.

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="json")
        )
        batch.add_column(sa.Column("description", sa.Text(), nullable=True))
        batch.add_column(sa.Column("parent_id", sa.String(length=26), nullable=True))
        batch.add_column(
            sa.Column("level", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.create_foreign_key(
            op.f("fk_artifacts_parent_id_artifacts"),
            "artifacts",
            ["parent_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_unique_constraint(op.f("uq_artifacts_job_id_name"), ["job_id", "name"])
        batch.create_index("ix_artifacts_parent_id", ["parent_id"])
    # The server defaults only fill existing rows; the model sets the values.
    with op.batch_alter_table("artifacts") as batch:
        batch.alter_column("kind", server_default=None)
        batch.alter_column("level", server_default=None)
    # Existing run records become their jobs' `result` artifacts.
    op.execute(
        "UPDATE artifacts SET name = 'result' WHERE id IN "
        "(SELECT result_artifact_id FROM jobs WHERE result_artifact_id IS NOT NULL)"
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("cached_from", sa.String(length=26), nullable=True))
        batch.add_column(sa.Column("cache_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("callback_url", sa.String(length=2048), nullable=True))
    op.create_table(
        "cache_entries",
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("task_name", sa.String(length=200), nullable=False),
        sa.Column("job_id", sa.String(length=26), nullable=False),
        _ts("updated_at", nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_cache_entries_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("cache_key", name=op.f("pk_cache_entries")),
    )
    op.create_index("ix_cache_entries_task_name", "cache_entries", ["task_name"])
    op.create_table(
        "callback_deliveries",
        sa.Column("job_id", sa.String(length=26), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at", nullable=False),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        _ts("lease_expires_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("delivered_at"),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_callback_deliveries_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_callback_deliveries")),
    )
    op.create_index(
        "ix_callback_deliveries_due", "callback_deliveries", ["state", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_callback_deliveries_due", table_name="callback_deliveries")
    op.drop_table("callback_deliveries")
    op.drop_index("ix_cache_entries_task_name", table_name="cache_entries")
    op.drop_table("cache_entries")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("callback_url")
        batch.drop_column("cache_key")
        batch.drop_column("cached_from")
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_index("ix_artifacts_parent_id")
        batch.drop_constraint(op.f("uq_artifacts_job_id_name"), type_="unique")
        batch.drop_constraint(op.f("fk_artifacts_parent_id_artifacts"), type_="foreignkey")
        batch.drop_column("level")
        batch.drop_column("parent_id")
        batch.drop_column("description")
        batch.drop_column("kind")
        batch.drop_column("name")
