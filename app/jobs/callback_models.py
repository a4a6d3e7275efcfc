"""The completion-callback outbox: one row per job that has a `callback_url`."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdColumnType, UTCDateTime


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class CallbackDelivery(Base):
    """The delivery state of one job's callback.

    Written with the job when it is queued; a dispatcher delivers it once the job has ended.
    A dispatcher claims a row with a lease (`lease_owner`, `lease_expires_at`), so two processes
    never deliver the same attempt; `attempts` counts claims, so a crash mid-delivery uses one.
    """

    __tablename__ = "callback_deliveries"
    __table_args__ = (Index("ix_callback_deliveries_due", "state", "next_attempt_at"),)

    job_id: Mapped[str] = mapped_column(
        IdColumnType(), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
