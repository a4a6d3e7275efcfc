"""The result cache: for each cache key, the latest job that ran (or runs) it."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdColumnType, UTCDateTime


class CacheEntry(Base):
    """One cache key and the job holding it: pending or running (later requests join it) or
    completed (later requests reuse its result until the task's `cache_ttl` passes).

    The primary key is what makes concurrent identical requests join one run: only one
    transaction can point a key at a new job.
    """

    __tablename__ = "cache_entries"
    __table_args__ = (Index("ix_cache_entries_task_name", "task_name"),)

    cache_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_name: Mapped[str] = mapped_column(String(200))
    job_id: Mapped[str] = mapped_column(IdColumnType(), ForeignKey("jobs.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
