"""The schedules table: one row per schedule, made over REST or defined in code."""

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdColumnType, JSONType, UTCDateTime
from app.schedules.timing import Timing


class ScheduleRecord(Base):
    """A schedule. Its fires are jobs with `schedule_id` and `scheduled_for` set (the pair is
    unique on the jobs table); `next_fire_at` is the first fire time not yet handled."""

    __tablename__ = "schedules"
    __table_args__ = (Index("ix_schedules_due", "enabled", "next_fire_at"),)

    id: Mapped[str] = mapped_column(IdColumnType(), primary_key=True)
    task_name: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    cron: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    catchup: Mapped[str] = mapped_column(String(16))
    overlap: Mapped[str] = mapped_column(String(16))
    next_fire_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set for a schedule defined in code: the name of the task that declares it (one per
    # task). Such rows are upserted at start-up; null for schedules made over REST.
    code_key: Mapped[str | None] = mapped_column(String(200), unique=True)

    @property
    def timing(self) -> Timing:
        return Timing(self.cron, self.timezone, self.interval_seconds)

    @property
    def defined_in_code(self) -> bool:
        return self.code_key is not None
