"""The workers table: one row per worker, written by its own heartbeat."""

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, JSONType, UTCDateTime


class WorkerRecord(Base):
    """A worker process. Alive while `stopped_at` is null and `last_seen_at` is recent; a
    worker that stops cleanly sets `stopped_at` itself (`stop_reason` "stopped"), one that
    stopped beating is marked "expired" by another worker, which recovers its jobs."""

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_started_at", "started_at"),)

    # The id the worker writes into the jobs it holds (`host:pid:<start>-<random>`).
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    # Names of the tasks it claims.
    tasks: Mapped[list[str]] = mapped_column(JSONType)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    running: Mapped[int] = mapped_column(Integer)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stop_reason: Mapped[str | None] = mapped_column(String(16))
