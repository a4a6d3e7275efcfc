"""The artifact table: JSON documents, most of them the record of one job run.

A job's result artifact is named `result`; a task adds more under names of its own (unique per
job). Artifacts may nest (`parent_id`, `level`), across jobs too: deleting a job deletes its own
artifacts, and a child that belongs to another job survives as a root (`parent_id` set null).
A flow's artifacts nest as its jobs do (`app.jobs.store.artifact_links`).
"""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdColumnType, JSONType, UTCDateTime

RESULT_NAME = "result"


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        Index("ix_artifacts_job_id", "job_id", "id"),
        Index("ix_artifacts_parent_id", "parent_id"),
        UniqueConstraint("job_id", "name", name="uq_artifacts_job_id_name"),
    )

    id: Mapped[str] = mapped_column(IdColumnType(), primary_key=True)
    job_id: Mapped[str | None] = mapped_column(
        IdColumnType(), ForeignKey("jobs.id", ondelete="CASCADE")
    )
    # Writers of a run's record leave the name out: it is the job's `result` artifact.
    name: Mapped[str | None] = mapped_column(String(200), default=RESULT_NAME)
    kind: Mapped[str] = mapped_column(String(16), default="json")
    description: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[str | None] = mapped_column(
        IdColumnType(), ForeignKey("artifacts.id", ondelete="SET NULL")
    )
    level: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[Any] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
