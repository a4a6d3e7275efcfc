"""Queueing new jobs: the rows, their `created` events and one NOTIFY."""

from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import isoformat
from app.jobs.events import EventType
from app.jobs.models import Job, JobStatus
from app.jobs.notify import notify_new_jobs
from app.jobs.store.effects import Effects
from app.jobs.store.rows import JOBS, event_row, insert_events, job_row


async def queue_in(session: AsyncSession, batches: Sequence[Sequence[Job]]) -> list[Effects]:
    """Insert each batch of new jobs with their `created` events and one NOTIFY."""
    jobs = [job for batch in batches for job in batch]
    for job in jobs:
        job.event_seq = 1  # the `created` event below
    await session.execute(insert(JOBS), [job_row(job) for job in jobs])
    await record_created(session, jobs)
    return [queued_effects(batch) for batch in batches]


async def record_created(session: AsyncSession, jobs: Sequence[Job]) -> None:
    """The `created` event (number 1) of each newly inserted pending job, and one NOTIFY."""
    await insert_events(
        session,
        [
            event_row(
                job.id,
                1,
                EventType.CREATED,
                {"status": JobStatus.PENDING.value, "run_at": isoformat(job.run_at)},
                job.created_at,
            )
            for job in jobs
        ],
    )
    await notify_new_jobs(session)


def queued_effects(jobs: Sequence[Job]) -> Effects:
    """What newly queued jobs mean after the commit: bus, counters, a wake-up."""
    return Effects(
        changed=[job.id for job in jobs],
        queued=[(job.id, job.task_name) for job in jobs],
        wake=True,
    )
