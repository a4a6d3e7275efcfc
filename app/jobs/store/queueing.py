"""Queueing new jobs: the rows, their `created` events and one NOTIFY.

New jobs go in as plain column dicts (`JobRow`), with Core `executemany` inserts: one statement
for the jobs and one for their events, however many jobs a transaction carries.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import isoformat
from app.jobs.events import EventType
from app.jobs.models import Job, JobStatus
from app.jobs.notify import notify_new_jobs
from app.jobs.store.effects import Effects
from app.jobs.store.rows import JOBS, event_row, insert_events, job_row

JobRow = dict[str, Any]

# The columns a new pending job always has, at their defaults (`error` is written as JSON
# null, as an ORM insert writes it). The other columns are left out of its row: fewer values to
# bind per job, and the database stores them as NULL.
_NEW_ROW: JobRow = {
    column.key: getattr(column.default, "arg", None)
    if column.default is not None and column.default.is_scalar
    else None
    for column in JOBS.columns
    if column.default is not None
    or column.key in {"id", "task_name", "params", "run_at", "created_at", "error"}
}
_COLUMNS = frozenset(JOBS.columns.keys())
_PENDING = JobStatus.PENDING.value


def new_job_row(**values: Any) -> JobRow:
    """A new job's row: `values` over the column defaults (unknown columns: KeyError)."""
    unknown = values.keys() - _COLUMNS
    if unknown:
        raise KeyError(f"not columns of jobs: {sorted(unknown)}")
    return {**_NEW_ROW, **values}


async def queue_in(session: AsyncSession, batches: Sequence[Sequence[Job]]) -> list[Effects]:
    """Insert each batch of new job objects with their `created` events and one NOTIFY."""
    for batch in batches:
        for job in batch:
            job.event_seq = 1  # the `created` event below
    return await queue_rows_in(session, [[job_row(job) for job in batch] for batch in batches])


async def queue_rows_in(
    session: AsyncSession, batches: Sequence[Sequence[JobRow]]
) -> list[Effects]:
    """Insert each batch of new job rows with their `created` events and one NOTIFY."""
    rows = [row for batch in batches for row in batch]
    # One executemany per set of columns (rows of job objects carry every column).
    by_columns: dict[tuple[str, ...], list[JobRow]] = {}
    for row in rows:
        row["event_seq"] = 1  # the `created` event below
        by_columns.setdefault(tuple(row), []).append(row)
    for same in by_columns.values():
        await session.execute(insert(JOBS), same)
    await insert_events(
        session,
        [
            event_row(
                row["id"],
                1,
                EventType.CREATED,
                {"status": _PENDING, "run_at": isoformat(row["run_at"])},
                row["created_at"],
            )
            for row in rows
        ],
    )
    await notify_new_jobs(session)
    return [
        Effects(
            changed=[row["id"] for row in batch],
            queued=[(row["id"], row["task_name"]) for row in batch],
            wake=True,
        )
        for batch in batches
    ]


async def record_created(session: AsyncSession, jobs: Sequence[Job]) -> None:
    """The `created` event (number 1) of each newly inserted pending job, and one NOTIFY."""
    await insert_events(
        session,
        [
            event_row(
                job.id,
                1,
                EventType.CREATED,
                {"status": _PENDING, "run_at": isoformat(job.run_at)},
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
