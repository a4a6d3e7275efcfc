"""Queue a schedule's fire: one job per (schedule, fire time), created at most once.

Every process that runs the firing loop may try to queue the same fire at the same moment; the
unique (schedule_id, scheduled_for) pair on the jobs table lets exactly one insert through and
makes the others no-ops (INSERT ... ON CONFLICT DO NOTHING), inside the caller's transaction.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import isoformat, new_id, utcnow
from app.jobs.events import EventType
from app.jobs.models import JobStatus
from app.jobs.notify import notify_new_jobs
from app.jobs.store.rows import JOBS, event_row, insert_events


@dataclass(frozen=True)
class Fire:
    """One fire of a schedule, with the task options its job gets."""

    schedule_id: str
    scheduled_for: datetime
    task_name: str
    params: dict[str, Any]
    priority: int
    max_attempts: int
    timeout_seconds: float | None
    max_worker_losses: int
    # "schedule" for a fire time; "trigger" for `$trigger` (run now, by hand).
    source: str = "schedule"


async def insert_fire(
    session: AsyncSession, fire: Fire, *, now: datetime | None = None
) -> str | None:
    """Insert the fire's job and its `created` event; the new job's id, or None when the fire
    was already queued (by this or another process). Does not commit."""
    now = now or utcnow()
    # A fire time that is already past runs now; the job never starts before its fire time.
    run_at = max(now, fire.scheduled_for)
    job_id = new_id()
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(JOBS)
        .values(
            id=job_id,
            task_name=fire.task_name,
            status=JobStatus.PENDING.value,
            params=fire.params,
            priority=fire.priority,
            run_at=run_at,
            created_at=now,
            attempts=0,
            max_attempts=fire.max_attempts,
            timeout_seconds=fire.timeout_seconds,
            worker_losses=0,
            max_worker_losses=fire.max_worker_losses,
            event_seq=1,
            schedule_id=fire.schedule_id,
            scheduled_for=fire.scheduled_for,
        )
        .on_conflict_do_nothing(index_elements=[JOBS.c.schedule_id, JOBS.c.scheduled_for])
        .returning(JOBS.c.id)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        return None
    data = {
        "status": JobStatus.PENDING.value,
        "run_at": isoformat(run_at),
        "source": fire.source,
        "schedule_id": fire.schedule_id,
        "scheduled_for": isoformat(fire.scheduled_for),
    }
    await insert_events(session, [event_row(job_id, 1, EventType.CREATED, data, now)])
    await notify_new_jobs(session)
    return job_id
