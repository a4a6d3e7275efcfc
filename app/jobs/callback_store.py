"""All SQL of the completion-callback outbox. Flushes, never commits."""

from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import table_of
from app.jobs.callback_models import CallbackDelivery, DeliveryState
from app.jobs.models import TERMINAL_STATUSES, Job

DELIVERIES = table_of(CallbackDelivery)
_TERMINAL = [status.value for status in TERMINAL_STATUSES]


async def add_delivery(session: AsyncSession, job_id: str, now: datetime) -> None:
    """The outbox row of a new job with a `callback_url` (in the job's own transaction)."""
    await session.execute(
        insert(DELIVERIES).values(
            job_id=job_id, state=DeliveryState.PENDING.value, attempts=0, next_attempt_at=now
        )
    )


async def claim_due(
    session: AsyncSession, *, owner: str, now: datetime, lease_until: datetime, limit: int
) -> list[tuple[str, int]]:
    """Lease up to `limit` due deliveries of ended jobs to `owner`; (job_id, attempt) each.

    One UPDATE whose WHERE re-checks the lease: a row another process claimed meanwhile is not
    claimed again (PostgreSQL re-evaluates it after the row lock; SQLite has one writer).
    """
    d = DELIVERIES.c
    free = or_(d.lease_expires_at.is_(None), d.lease_expires_at < now)
    due = (
        select(d.job_id)
        .join(Job, Job.id == d.job_id)
        .where(
            d.state == DeliveryState.PENDING.value,
            d.next_attempt_at <= now,
            free,
            Job.status.in_(_TERMINAL),
        )
        .order_by(d.next_attempt_at)
        .limit(limit)
        .with_for_update(of=DELIVERIES, skip_locked=True)
    )
    rows = await session.execute(
        update(DELIVERIES)
        .where(d.job_id.in_(due.scalar_subquery()), d.state == DeliveryState.PENDING.value, free)
        .values(lease_owner=owner, lease_expires_at=lease_until, attempts=d.attempts + 1)
        .returning(d.job_id, d.attempts)
    )
    return [(job_id, attempts) for job_id, attempts in rows]


async def settle(session: AsyncSession, job_id: str, *, owner: str, values: dict[str, Any]) -> bool:
    """Record an attempt's end on a delivery this owner still leases; False if it lost it."""
    d = DELIVERIES.c
    result = await session.execute(
        update(DELIVERIES)
        .where(d.job_id == job_id, d.lease_owner == owner, d.state == DeliveryState.PENDING.value)
        .values(lease_owner=None, lease_expires_at=None, **values)
        .returning(d.job_id)
    )
    return result.first() is not None


async def delivery_of(session: AsyncSession, job_id: str) -> CallbackDelivery | None:
    return await session.get(CallbackDelivery, job_id)
