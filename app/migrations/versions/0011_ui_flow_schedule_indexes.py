"""Partial indexes for the dashboard's jobs list filtered by parent or by schedule.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _partial(name: str, column: str) -> None:
    where = sa.text(f"{column} IS NOT NULL")
    op.create_index(
        name, "jobs", [column, "id"], sqlite_where=where, postgresql_where=where
    )


def upgrade() -> None:
    _partial("ix_jobs_parent_id_id", "parent_id")
    _partial("ix_jobs_schedule_id_id", "schedule_id")


def downgrade() -> None:
    op.drop_index("ix_jobs_schedule_id_id", table_name="jobs")
    op.drop_index("ix_jobs_parent_id_id", table_name="jobs")
