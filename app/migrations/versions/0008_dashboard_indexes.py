"""Indexes for the dashboard's queries on the jobs table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_status_finished_at", "jobs", ["status", "finished_at"])
    op.create_index("ix_jobs_task_name_status_id", "jobs", ["task_name", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_task_name_status_id", table_name="jobs")
    op.drop_index("ix_jobs_status_finished_at", table_name="jobs")
