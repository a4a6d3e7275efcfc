"""The claim index again orders priority descending on SQLite, under a new name.

A batch table rebuild on SQLite (0005) re-created `ix_jobs_claim` from reflection, which does
not carry `DESC`: the claim's `ORDER BY priority DESC, run_at, id` then sorted every pending
job of the top priority in a temporary b-tree on each claim, a cost that grew with the queue.
`ix_jobs_claim_order` is the index 0004 meant to make, on both backends.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS: list[str | sa.ColumnElement[str]] = [
    "status",
    sa.literal_column("priority DESC"),
    "run_at",
    "id",
    "task_name",
]


def upgrade() -> None:
    op.drop_index("ix_jobs_claim", table_name="jobs")
    op.create_index("ix_jobs_claim_order", "jobs", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_jobs_claim_order", table_name="jobs")
    op.create_index("ix_jobs_claim", "jobs", COLUMNS)
