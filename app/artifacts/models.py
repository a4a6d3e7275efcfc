"""The artifact table: JSON documents, most of them the record of one job run."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdColumnType, JSONType, UTCDateTime


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (Index("ix_artifacts_job_id", "job_id", "id"),)

    id: Mapped[str] = mapped_column(IdColumnType(), primary_key=True)
    job_id: Mapped[str | None] = mapped_column(
        IdColumnType(), ForeignKey("jobs.id", ondelete="CASCADE")
    )
    data: Mapped[Any] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
