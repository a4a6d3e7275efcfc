"""Flows: children link to their parent and root; a parent's awaited children.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(length=26), nullable=True))
        batch.add_column(sa.Column("root_id", sa.String(length=26), nullable=True))
        batch.add_column(sa.Column("map_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("child_key", sa.String(length=120), nullable=True))
        batch.create_foreign_key(
            op.f("fk_jobs_parent_id_jobs"), "jobs", ["parent_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_index("uq_jobs_parent_child_key", ["parent_id", "child_key"], unique=True)
        batch.create_index("ix_jobs_root_id", ["root_id", "id"], unique=False)
    op.create_table(
        "job_waits",
        sa.Column("parent_id", sa.String(length=26), nullable=False),
        sa.Column("child_id", sa.String(length=26), nullable=False),
        sa.Column("fail_fast", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["jobs.id"], name=op.f("fk_job_waits_parent_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("parent_id", "child_id", name=op.f("pk_job_waits")),
    )


def downgrade() -> None:
    op.drop_table("job_waits")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_root_id")
        batch.drop_index("uq_jobs_parent_child_key")
        batch.drop_constraint(op.f("fk_jobs_parent_id_jobs"), type_="foreignkey")
        batch.drop_column("child_key")
        batch.drop_column("map_index")
        batch.drop_column("root_id")
        batch.drop_column("parent_id")
