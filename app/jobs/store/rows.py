"""Core statements the store's changes share: event rows, NOTIFY, job rows, attempts.

Event numbers come from `jobs.event_seq`, taken while the job's row is held, so numbers never
repeat and a reader that has seen event N has seen every event before it.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, insert, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.models import Artifact
from app.core.clock import utcnow
from app.db.base import table_of
from app.jobs.models import (
    ACTIVE_STATUSES,
    LEASED_STATUSES,
    TERMINAL_STATUSES,
    Job,
    JobAttempt,
    JobEvent,
)
from app.jobs.notify import EVENTS_CHANNEL

if TYPE_CHECKING:
    from app.jobs.store.claimed import JobFacts

JOBS = cast(Table, Job.__table__)
EVENTS = table_of(JobEvent)
ATTEMPTS = table_of(JobAttempt)
ARTIFACTS = table_of(Artifact)
ACTIVE = [status.value for status in ACTIVE_STATUSES]
# Under a lease: the active statuses and a parent waiting for its children (no slot).
LEASED = [status.value for status in LEASED_STATUSES]
TERMINAL = [status.value for status in TERMINAL_STATUSES]

_NOTIFY_PAYLOAD_IDS = 250  # job ids per NOTIFY payload (PostgreSQL caps payloads at 8000 bytes)

EventRow = dict[str, Any]
_INSERT_EVENTS = insert(EVENTS)


def event_row(job_id: str, seq: int, type_: str, data: dict[str, Any], at: datetime) -> EventRow:
    return {"job_id": job_id, "seq": seq, "type": str(type_), "data": data, "created_at": at}


async def insert_events(session: AsyncSession, rows: Sequence[EventRow]) -> None:
    """Insert numbered event rows and NOTIFY other processes about their jobs."""
    if not rows:
        return
    await session.execute(_INSERT_EVENTS, list(rows))
    await notify_events(session, {row["job_id"] for row in rows})


async def append_events(
    session: AsyncSession, job_id: str, events: Sequence[tuple[str, dict[str, Any]]]
) -> int:
    """Append events to one job, numbering them under its row lock. Returns the last number
    (0 if the job no longer exists)."""
    if not events:
        return 0
    last = (
        await session.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(event_seq=JOBS.c.event_seq + len(events))
            .returning(JOBS.c.event_seq)
        )
    ).scalar_one_or_none()
    if last is None:
        return 0
    now = utcnow()
    first = last - len(events) + 1
    await insert_events(
        session,
        [event_row(job_id, first + i, type_, data, now) for i, (type_, data) in enumerate(events)],
    )
    return int(last)


async def notify_events(session: AsyncSession, job_ids: Iterable[str]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    ids = sorted(set(job_ids))
    for start in range(0, len(ids), _NOTIFY_PAYLOAD_IDS):
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {
                "channel": EVENTS_CHANNEL,
                "payload": ",".join(ids[start : start + _NOTIFY_PAYLOAD_IDS]),
            },
        )


def job_row(job: Job) -> dict[str, Any]:
    """A transient job's column values, with column defaults where the object has none."""
    row: dict[str, Any] = {}
    for column in JOBS.columns:
        value = getattr(job, column.key)
        default = column.default
        if value is None and default is not None and default.is_scalar:
            value = getattr(default, "arg", None)
        row[column.key] = value
    return row


def attempt_row(
    job: "JobFacts", status: str, worker_id: str | None, now: datetime, error: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "attempt": job.attempts,
        "status": status,
        "worker_id": worker_id,
        "started_at": job.started_at,
        "finished_at": now,
        "error": error,
    }


def run_record(job: "JobFacts", result: Any, error: dict[str, Any] | None) -> dict[str, Any]:
    """The result artifact's data: exactly task_name, params, result and error."""
    return {"task_name": job.task_name, "params": job.params, "result": result, "error": error}
