"""The store's other changes: renew, release, recover lost jobs, cancel, delete, progress and
events, retention. Each takes the caller's session and returns the `Effects` to apply after
its commit."""

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import ConflictError, NotFoundError
from app.jobs.context import ProgressUpdate
from app.jobs.decisions import LostFacts, Requeue, decide_lost
from app.jobs.events import EventType
from app.jobs.models import Job, JobStatus
from app.jobs.notify import notify_cancel, notify_new_jobs
from app.jobs.store.attempts import Writes, end_job
from app.jobs.store.effects import Effects
from app.jobs.store.rows import (
    ACTIVE,
    JOBS,
    LEASED,
    TERMINAL,
    append_events,
    attempt_row,
    event_row,
    insert_events,
)

_REQUEUE = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("b_id"))
    .values(
        status=JobStatus.PENDING,
        attempts=JOBS.c.attempts - 1,
        run_at=bindparam("b_now", type_=JOBS.c.run_at.type),
        error=bindparam("b_error", type_=JOBS.c.error.type),
        worker_id=None,
        lease_expires_at=None,
        worker_losses=bindparam("b_losses"),
        event_seq=bindparam("b_seq"),
    )
)


async def renew(
    session: AsyncSession, worker_id: str, job_ids: Sequence[str], lease_until: datetime
) -> tuple[set[str], set[str]]:
    """Extend the leases this worker still holds: the ids still held and, of those, the ids
    whose cancellation was requested."""
    if not job_ids:
        return set(), set()
    rows = await session.execute(
        update(JOBS)
        .where(JOBS.c.id.in_(job_ids), JOBS.c.worker_id == worker_id, JOBS.c.status.in_(LEASED))
        .values(lease_expires_at=lease_until)
        .returning(JOBS.c.id, JOBS.c.cancel_requested_at)
    )
    held: set[str] = set()
    canceled: set[str] = set()
    for job_id, cancel_requested_at in rows:
        held.add(job_id)
        if cancel_requested_at is not None:
            canceled.add(job_id)
    return held, canceled


async def release(
    session: AsyncSession, worker_id: str, job_ids: Sequence[str], now: datetime
) -> Effects:
    """Hand running jobs back to the queue without counting the attempt (shutdown)."""
    effects = Effects()
    if not job_ids:
        return effects
    rows = await session.execute(
        update(JOBS)
        .where(JOBS.c.id.in_(job_ids), JOBS.c.worker_id == worker_id, JOBS.c.status.in_(LEASED))
        .values(
            status=JobStatus.PENDING,
            attempts=JOBS.c.attempts - 1,
            run_at=now,
            worker_id=None,
            lease_expires_at=None,
            event_seq=JOBS.c.event_seq + 1,
        )
        .returning(JOBS.c.id, JOBS.c.event_seq)
    )
    events = [event_row(job_id, seq, EventType.RELEASED, {}, now) for job_id, seq in rows]
    await insert_events(session, events)
    await notify_new_jobs(session)
    effects.changed = [row["job_id"] for row in events]
    effects.log(logging.WARNING, "handed back unfinished jobs", count=len(events))
    return effects


async def recover_lost(
    session: AsyncSession, now: datetime, dead_worker_ids: Sequence[str], limit: int = 100
) -> Effects:
    """Resolve running jobs whose lease expired, or whose worker is known to be dead, as
    `decide_lost` says: back to the queue without using an attempt, or ended."""
    condition = JOBS.c.lease_expires_at < now
    if dead_worker_ids:
        condition = condition | JOBS.c.worker_id.in_(list(dead_worker_ids))
    query = (
        select(JOBS)
        .where(JOBS.c.status.in_(LEASED), condition)
        .order_by(JOBS.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    jobs = [Job(**row._mapping) for row in await session.execute(query)]
    effects = Effects(changed=[job.id for job in jobs])
    writes = Writes()
    requeues: list[dict[str, Any]] = []
    for job in jobs:
        facts = LostFacts(
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            worker_losses=job.worker_losses,
            max_worker_losses=job.max_worker_losses,
            cancel_requested=job.cancel_requested_at is not None,
        )
        verdict = decide_lost(job.id, facts)
        seq = job.event_seq + 1
        if isinstance(verdict, Requeue):
            requeues.append(
                {
                    "b_id": job.id,
                    "b_now": now,
                    "b_error": verdict.summary,
                    "b_losses": verdict.worker_losses,
                    "b_seq": seq,
                }
            )
            data = {
                "attempt": job.attempts,
                "error": verdict.summary,
                "worker_losses": verdict.worker_losses,
            }
            writes.events.append(event_row(job.id, seq, EventType.REQUEUED, data, now))
            effects.log(
                logging.WARNING,
                "requeued a job whose worker was lost",
                job_id=job.id,
                worker_losses=verdict.worker_losses,
            )
            continue
        losses = job.worker_losses + (0 if verdict.status is JobStatus.CANCELED else 1)
        summary = verdict.summary
        writes.attempts.append(
            attempt_row(job, JobStatus.FAILED.value, job.worker_id, now, summary)
        )
        end_job(writes, job, verdict, seq=seq, worker_id=None, result=None, now=now, losses=losses)
        effects.finished.append((job.task_name, verdict.status.value))
        effects.log(logging.WARNING, "resolved a job whose worker was lost", job_id=job.id)
    if requeues:
        await session.execute(_REQUEUE, requeues)
        await notify_new_jobs(session)
        effects.wake = True
    effects.merge(await writes.flush(session))
    return effects


async def cancel(session: AsyncSession, job_id: str, now: datetime) -> tuple[Job, Effects]:
    """Cancel a pending job at once, or ask the worker running it to stop (`canceling`)."""
    row = (
        await session.execute(select(JOBS).where(JOBS.c.id == job_id).with_for_update())
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"Job {job_id} does not exist.")
    job = Job(**row._mapping)
    if JobStatus(job.status).is_terminal:
        raise ConflictError(f"Job {job_id} is already {job.status}.")
    seq = job.event_seq + 1
    values: dict[str, Any] = {
        "event_seq": seq,
        "cancel_requested_at": job.cancel_requested_at or now,
    }
    effects = Effects(changed=[job_id])
    if job.status == JobStatus.PENDING:
        error = {"type": "JobCancelledError", "message": "canceled before it started"}
        values |= {"status": JobStatus.CANCELED, "finished_at": now, "error": error}
        event = EventType.CANCELED
        effects.finished.append((job.task_name, JobStatus.CANCELED.value))
    else:
        # Until the worker has stopped it; a sync task's thread may take a while.
        values["status"] = JobStatus.CANCELING
        await notify_cancel(session, job_id)
        event = EventType.CANCEL_REQUESTED
        effects.cancel.append(job_id)
    updated = (
        await session.execute(
            update(JOBS).where(JOBS.c.id == job_id).values(**values).returning(*JOBS.c)
        )
    ).one()
    job = Job(**updated._mapping)
    data = {"status": job.status, "attempt": job.attempts, "error": job.error}
    await insert_events(session, [event_row(job_id, seq, event, data, now)])
    return job, effects


async def delete_job(session: AsyncSession, job_id: str) -> None:
    """Delete a finished job and its artifacts; `ConflictError` while it is not finished."""
    status = await session.scalar(select(JOBS.c.status).where(JOBS.c.id == job_id))
    if status is None:
        raise NotFoundError(f"Job {job_id} does not exist.")
    result = await session.execute(
        delete(JOBS).where(JOBS.c.id == job_id, JOBS.c.status.in_(TERMINAL))
    )
    if not getattr(result, "rowcount", 0):
        raise ConflictError(f"Job {job_id} is {status}; only finished jobs can be deleted.")


async def append(
    session: AsyncSession,
    job_id: str,
    events: Sequence[tuple[str, dict[str, Any]]],
    progress: ProgressUpdate | None = None,
) -> Effects:
    """Progress of a running job and events (progress, log lines) appended in order."""
    if progress is not None:
        await session.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id, JOBS.c.status.in_(ACTIVE))
            .values(progress=progress.fraction, progress_message=progress.message)
        )
    last = await append_events(session, job_id, events)
    return Effects(changed=[job_id] if last else [])


async def delete_finished_before(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` finished jobs (with their artifacts) that ended before `cutoff`."""
    doomed = (
        select(JOBS.c.id)
        .where(JOBS.c.status.in_(TERMINAL), JOBS.c.finished_at < cutoff)
        .order_by(JOBS.c.finished_at)
        .limit(limit)
    )
    result = await session.execute(delete(JOBS).where(JOBS.c.id.in_(doomed.scalar_subquery())))
    return int(getattr(result, "rowcount", 0))
