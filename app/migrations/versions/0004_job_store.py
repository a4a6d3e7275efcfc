"""Worker losses: how often a job's worker died, and how often it may before the job fails;
the claim index carries the task name (workers claim only the tasks they have).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("worker_losses", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column(
                "max_worker_losses", sa.Integer(), nullable=False, server_default=sa.text("3")
            )
        )
    # The server defaults only fill existing rows; the store sets the values.
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("worker_losses", server_default=None)
        batch.alter_column("max_worker_losses", server_default=None)
    _claim_index(["status", sa.literal_column("priority DESC"), "run_at", "id", "task_name"])


def downgrade() -> None:
    _claim_index(["status", sa.literal_column("priority DESC"), "run_at", "id"])
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("max_worker_losses")
        batch.drop_column("worker_losses")


def _claim_index(columns: list[str | sa.ColumnElement[str]]) -> None:
    op.drop_index("ix_jobs_claim", table_name="jobs")
    op.create_index("ix_jobs_claim", "jobs", columns)
