"""Writing how attempts end: finish with the run's artifact, or go back to the queue to retry.

A few statements per batch, whatever its size. A job the worker no longer holds (its lease
expired and another worker took it) is left alone.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import isoformat, new_id, utcnow
from app.db.base import JSONType, UTCDateTime
from app.jobs.decisions import Finish, Retry, Verdict
from app.jobs.events import EventType
from app.jobs.models import JobStatus
from app.jobs.store import flow_ends, flows
from app.jobs.store.claimed import JobFacts
from app.jobs.store.effects import Effects
from app.jobs.store.rows import (
    ARTIFACTS,
    ATTEMPTS,
    JOBS,
    LEASED,
    EventRow,
    attempt_row,
    event_row,
    insert_events,
    run_record,
)


@dataclass(frozen=True)
class AttemptEnd:
    """One ended attempt and what was decided about it, waiting to be written."""

    worker_id: str
    job: JobFacts
    verdict: Verdict
    result: Any = None  # JSON-compatible; kept in the artifact whatever the verdict
    seconds: float | None = None  # how long the attempt ran


@dataclass(frozen=True)
class Recorded:
    """Whether the worker still held the job when its end was written, and what follows."""

    held: bool
    effects: Effects


async def held_by(session: AsyncSession, worker_id: str, job_ids: Sequence[str]) -> dict[str, int]:
    """Which of `job_ids` this worker still holds, with their last event number; the rows
    are locked until the transaction ends."""
    if not job_ids:
        return {}
    rows = await session.execute(_HELD, {"b_ids": list(job_ids), "b_worker_id": worker_id})
    return {job_id: event_seq for job_id, event_seq in rows}


_HELD = (
    select(JOBS.c.id, JOBS.c.event_seq)
    .where(
        JOBS.c.id.in_(bindparam("b_ids", expanding=True)),
        JOBS.c.worker_id == bindparam("b_worker_id"),
        JOBS.c.status.in_(LEASED),
    )
    .with_for_update()
)
_INSERT_ATTEMPTS = insert(ATTEMPTS)
_INSERT_ARTIFACTS = insert(ARTIFACTS)


class Writes:
    """Rows of one batch, written with one statement per table."""

    def __init__(self) -> None:
        self.finished: list[dict[str, Any]] = []
        self.retries: list[dict[str, Any]] = []
        self.artifacts: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self.events: list[EventRow] = []
        self.ended: list[flows.Ended] = []

    async def flush(self, session: AsyncSession) -> Effects:
        """Write the rows; what the jobs that ended mean for their flows is part of it."""
        if self.finished:
            await session.execute(_FINISH, self.finished)
        if self.retries:
            await session.execute(_RETRY, self.retries)
        if self.attempts:
            await session.execute(_INSERT_ATTEMPTS, self.attempts)
        if self.artifacts:
            await session.execute(_INSERT_ARTIFACTS, self.artifacts)
        await insert_events(session, self.events)
        return await flow_ends.after_ends(session, self.ended)


_FINISH = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        finished_at=bindparam("b_now", type_=UTCDateTime()),
        error=bindparam("b_error", type_=JSONType),
        result_artifact_id=bindparam("b_artifact_id"),
        worker_id=bindparam("b_worker_id"),
        worker_losses=bindparam("b_losses"),
        lease_expires_at=None,
        event_seq=bindparam("b_seq"),
    )
)
_RETRY = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("b_id"))
    .values(
        status=JobStatus.PENDING,
        run_at=bindparam("b_run_at", type_=UTCDateTime()),
        error=bindparam("b_error", type_=JSONType),
        worker_id=None,
        lease_expires_at=None,
        event_seq=bindparam("b_seq"),
    )
)


def end_job(
    writes: Writes,
    job: JobFacts,
    finish: Finish,
    *,
    seq: int,
    worker_id: str | None,
    result: Any,
    now: datetime,
    losses: int | None = None,
) -> None:
    """The one way a job ends: its status, error, artifact and terminal event together."""
    artifact_id = new_id()
    summary = finish.summary
    writes.finished.append(
        {
            "b_id": job.id,
            "b_status": finish.status.value,
            "b_now": now,
            "b_error": summary,
            "b_artifact_id": artifact_id,
            "b_worker_id": worker_id,
            "b_losses": job.worker_losses if losses is None else losses,
            "b_seq": seq,
        }
    )
    error = None
    if finish.error is not None:
        error = dict(finish.error)
        error.setdefault("traceback", None)
    writes.artifacts.append(
        {
            "id": artifact_id,
            "job_id": job.id,
            "data": run_record(job, result, error),
            "created_at": now,
        }
    )
    data = {
        "status": finish.status.value,
        "attempt": job.attempts,
        "error": summary,
        "result": artifact_id,
    }
    writes.events.append(event_row(job.id, seq, EventType(finish.status.value), data, now))
    writes.ended.append(flows.Ended.of(job, finish.status, summary, artifact_id))


async def finish_attempts(session: AsyncSession, ends: Sequence[AttemptEnd]) -> list[Recorded]:
    """Write each attempt's end in this transaction, as its verdict says."""
    now = utcnow()
    held: dict[str, int] = {}
    for worker_id in {end.worker_id for end in ends}:
        ids = [end.job.id for end in ends if end.worker_id == worker_id]
        held |= await held_by(session, worker_id, ids)
    writes = Writes()
    recorded: list[Recorded] = []
    for end in ends:
        job, verdict = end.job, end.verdict
        effects = Effects(changed=[job.id], wake=True)
        if end.seconds is not None:
            effects.attempt_seconds.append((job.task_name, end.seconds))
        if job.id not in held:
            effects.log(logging.WARNING, "job lease was lost; result discarded", job_id=job.id)
            recorded.append(Recorded(False, effects))
            continue
        seq = held[job.id] + 1
        status = verdict.status.value if isinstance(verdict, Finish) else JobStatus.FAILED.value
        writes.attempts.append(attempt_row(job, status, end.worker_id, now, verdict.summary))
        if isinstance(verdict, Retry):
            writes.retries.append(
                {
                    "b_id": job.id,
                    "b_run_at": verdict.run_at,
                    "b_error": verdict.summary,
                    "b_seq": seq,
                }
            )
            data = {
                "attempt": job.attempts,
                "error": verdict.summary,
                "run_at": isoformat(verdict.run_at),
            }
            writes.events.append(event_row(job.id, seq, EventType.RETRYING, data, now))
        else:
            end_job(
                writes, job, verdict, seq=seq, worker_id=end.worker_id, result=end.result, now=now
            )
            effects.finished.append((job.task_name, verdict.status.value))
        recorded.append(Recorded(True, effects))
    flow_effects = await writes.flush(session)
    if recorded:
        recorded[0].effects.merge(flow_effects)
    return recorded
