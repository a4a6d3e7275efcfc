"""Recording how attempts end: retry, finish with the run's artifact, or recover a lost job."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.models import Artifact
from app.core.clock import isoformat, new_id, utcnow
from app.db.base import table_of
from app.jobs.context import JobContext
from app.jobs.events import EventType, event_row, insert_events
from app.jobs.models import Job, JobAttempt, JobEvent, JobStatus
from app.jobs.repository import JobRepository
from app.jobs.runner import Outcome, backoff_delay
from app.tasks.registry import TaskDefinition

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttemptEnd:
    """One finished attempt, waiting to be written."""

    worker_id: str
    job: Job
    definition: TaskDefinition | None
    outcome: Outcome


def honour_cancel_request(context: JobContext, outcome: Outcome) -> Outcome:
    """A job asked to cancel ends `canceled`, even if its thread ran to the end regardless.

    A result it returned is kept in the artifact; nothing the task produced is thrown away.
    """
    if not context.cancel_requested or outcome.status is JobStatus.CANCELED:
        return outcome
    error = {
        "type": "JobCancelledError",
        "message": f"job {context.job_id} was canceled while running; the task ended "
        f"{'with a result' if outcome.status is JobStatus.COMPLETED else 'with an error'} "
        "after cancellation was requested",
        "traceback": outcome.error["traceback"] if outcome.error else None,
    }
    return Outcome(
        JobStatus.CANCELED, result=outcome.result, error=error, lingering=outcome.lingering
    )


def run_record(job: Job, outcome: Outcome) -> dict[str, Any]:
    """The artifact data of one run: exactly task_name, params, result and error."""
    return {
        "task_name": job.task_name,
        "params": job.params,
        "result": outcome.result,
        "error": outcome.error,
    }


def should_retry(job: Job, definition: TaskDefinition | None, outcome: Outcome) -> bool:
    if outcome.status is not JobStatus.FAILED or definition is None:
        return False
    if job.attempts >= job.max_attempts or outcome.exception is None:
        return False
    return isinstance(outcome.exception, definition.options.retry_on)


async def record_attempts(session: AsyncSession, ends: Sequence[AttemptEnd]) -> list[bool]:
    """Write each attempt's end in this transaction; True where the worker still held the job.

    A final attempt writes the job's status and its artifact together; a retryable failure
    puts the job back in the queue with a backoff. A job the worker no longer holds (its lease
    expired and another worker took it) is left alone. A few statements per batch, whatever
    its size.
    """
    repo = JobRepository(session)
    now = utcnow()
    held: dict[str, int] = {}
    for worker_id in {end.worker_id for end in ends}:
        ids = [end.job.id for end in ends if end.worker_id == worker_id]
        held |= await repo.held_by(worker_id, ids)
    finished: list[dict[str, Any]] = []
    retries: list[dict[str, Any]] = []
    artifacts: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for end in ends:
        job, outcome = end.job, end.outcome
        if job.id not in held:
            logger.warning("job lease was lost; result discarded", extra={"job_id": job.id})
            continue
        attempts.append(
            {
                "job_id": job.id,
                "attempt": job.attempts,
                "status": outcome.status.value,
                "worker_id": end.worker_id,
                "started_at": job.started_at,
                "finished_at": now,
                "error": outcome.summary,
            }
        )
        if should_retry(job, end.definition, outcome) and end.definition is not None:
            options = end.definition.options
            delay = backoff_delay(
                job.attempts, options.retry_backoff, options.retry_backoff_max, jitter=0.5
            )
            seq = held[job.id] + 1
            run_at = now + timedelta(seconds=delay)
            retries.append({"id": job.id, "run_at": run_at, "error": outcome.summary, "seq": seq})
            events.append(
                event_row(
                    job.id,
                    seq,
                    EventType.RETRYING,
                    {
                        "attempt": job.attempts,
                        "error": outcome.summary,
                        "run_at": isoformat(run_at),
                    },
                    now,
                )
            )
        else:
            artifact_id = new_id()
            seq = held[job.id] + 1
            finished.append(
                {
                    "id": job.id,
                    "status": outcome.status.value,
                    "error": outcome.summary,
                    "artifact_id": artifact_id,
                    "now": now,
                    "seq": seq,
                }
            )
            events.append(
                event_row(
                    job.id,
                    seq,
                    EventType(outcome.status.value),
                    {
                        "status": outcome.status.value,
                        "attempt": job.attempts,
                        "error": outcome.summary,
                        "result": artifact_id,
                    },
                    now,
                )
            )
            artifacts.append(
                {
                    "id": artifact_id,
                    "job_id": job.id,
                    "data": run_record(job, outcome),
                    "created_at": now,
                }
            )
    await repo.finish_many(finished)
    await repo.retry_many(retries)
    await repo.add_attempts(attempts)
    if artifacts:
        await session.execute(insert(table_of(Artifact)), artifacts)
    await insert_events(session, events)
    return [end.job.id in held for end in ends]


def recover_lost_job(session: AsyncSession, job: Job, now: datetime) -> bool:
    """Resolve a job whose worker died. Returns True when it was put back in the queue.

    With attempts left it is requeued; otherwise it fails with `WorkerLost` (or ends
    `canceled` if cancellation had been asked for), with its artifact.
    """
    message = (
        f"interrupted: the worker running attempt {job.attempts} of {job.max_attempts} "
        "stopped before it finished"
    )
    error = {"type": "WorkerLost", "message": message}
    session.add(
        JobAttempt(
            job_id=job.id,
            attempt=job.attempts,
            status=JobStatus.FAILED.value,
            worker_id=job.worker_id,
            started_at=job.started_at,
            finished_at=now,
            error=error,
        )
    )
    job.worker_id = None
    job.lease_expires_at = None
    job.error = error
    job.event_seq += 1
    if job.cancel_requested_at is None and job.attempts < job.max_attempts:
        job.status = JobStatus.PENDING
        job.run_at = now
        session.add(_event(job, EventType.REQUEUED, {"attempt": job.attempts, "error": error}, now))
        logger.warning("requeued a job whose worker was lost", extra={"job_id": job.id})
        return True
    if job.cancel_requested_at is not None:
        job.status = JobStatus.CANCELED
        error = {"type": "JobCancelledError", "message": f"canceled; {message}"}
        job.error = error
    else:
        job.status = JobStatus.FAILED
    artifact_id = new_id()
    job.finished_at = now
    job.result_artifact_id = artifact_id
    record = {
        "task_name": job.task_name,
        "params": job.params,
        "result": None,
        "error": {**error, "traceback": None},
    }
    session.add(Artifact(id=artifact_id, job_id=job.id, data=record, created_at=now))
    data = {"status": job.status, "attempt": job.attempts, "error": error, "result": artifact_id}
    session.add(_event(job, EventType(job.status), data, now))
    logger.warning("resolved a job whose worker was lost", extra={"job_id": job.id})
    return False


def _event(job: Job, type_: EventType, data: dict[str, Any], now: datetime) -> JobEvent:
    return JobEvent(job_id=job.id, seq=job.event_seq, type=type_.value, data=data, created_at=now)
