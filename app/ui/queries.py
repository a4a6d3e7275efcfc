"""The dashboard's read-only SQL. Every query is bounded: keyset pages, capped counts, limits.

Job ids are ULIDs, so id order is creation order and a time range is an id range: every list
walks an index in id order and stops after one page, whatever the table's size.
"""

import functools
import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    bindparam,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.artifacts.models import Artifact
from app.jobs.models import Job, JobAttempt, JobEvent
from app.ui.flows import FlowView, flow_view
from app.workers.models import WorkerRecord
from app.workers.repository import WorkerRepository
from app.workers.schemas import WorkerRead

ROW_COLUMNS = (
    Job.id,
    Job.task_name,
    Job.status,
    Job.created_at,
    Job.started_at,
    Job.finished_at,
    Job.attempts,
    Job.max_attempts,
    Job.progress,
    Job.error,
    Job.worker_id,
    Job.parent_id,
    Job.map_index,
)
LOG_TYPES = ("log", "log_truncated")
# A root's stream carries its descendants' starts and ends: the flow panel shows them, the
# timeline does not (a map of 10,000 children would bury the job's own events).
CHILD_TYPES = ("child_started", "child_finished")
NOT_TIMELINE = (*LOG_TYPES, *CHILD_TYPES, "progress")
WORKERS_SHOWN = 20
CHILDREN_SHOWN = 50
CHILDREN_COUNT_CAP = 10_000
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid_floor(moment: datetime) -> str:
    """The smallest ULID made at `moment` (to the millisecond): ids at or after it sort >= it."""
    ms = max(0, int(moment.timestamp() * 1000))
    chars = []
    for _ in range(10):
        chars.append(_CROCKFORD[ms & 31])
        ms >>= 5
    return "".join(reversed(chars)) + "0" * 16


STATUSES = ("pending", "running", "waiting", "canceling", "completed", "failed", "canceled")
TASK_STATUSES = ("pending", "running", "completed", "failed", "canceled")


@functools.cache
def _counts_statement(statuses: tuple[str, ...]) -> Select[Any]:
    """One SELECT of a COUNT(*) per status, each stopping after `:cap` rows (the caller
    shows more than the cap as "at least"). Built once: the page pays no statement building."""
    counts = []
    for status in statuses:
        inner = select(Job.id).where(Job.status == status)
        inner = inner.limit(bindparam("cap", type_=Integer))
        counts.append(select(func.count()).select_from(inner.subquery()).scalar_subquery())
    return select(*counts)


async def capped_counts(
    session: AsyncSession, cap: int, statuses: tuple[str, ...]
) -> dict[str, int]:
    """How many jobs are in each status, each count stopping at cap+1."""
    row = (await session.execute(_counts_statement(statuses), {"cap": cap + 1})).one()
    return {status: int(value) for status, value in zip(statuses, row, strict=True)}


def unindexed(column: InstrumentedAttribute[str]) -> ColumnElement[str]:
    """`column || ''`: the same value, which no index covers. With a parent, root or schedule
    filter the planner must walk that filter's index: SQLite's statistics count the NULLs of
    those columns as one huge group, so after ANALYZE it would rather walk a status or task
    index and filter (a scan of a tenth of the table for a flow of ten jobs)."""
    return column.concat("")


@dataclass(frozen=True)
class JobFilter:
    status: str | None = None
    task_names: Sequence[str] | None = None  # None: any task; empty: no task matches
    created_from: datetime | None = None
    created_to: datetime | None = None
    parent_id: str | None = None  # the children of this job
    root_id: str | None = None  # every job of this flow, its root included
    schedule_id: str | None = None  # the fires of this schedule

    @property
    def narrow(self) -> bool:
        """Whether a parent, root or schedule filter picks the few jobs to walk."""
        return any(value is not None for value in (self.parent_id, self.root_id, self.schedule_id))

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.status is not None:
            status = unindexed(Job.status) if self.narrow else Job.status
            conditions.append(status == self.status)
        if self.parent_id is not None:
            conditions.append(Job.parent_id == self.parent_id)
        if self.schedule_id is not None:
            conditions.append(Job.schedule_id == self.schedule_id)
        if self.created_from is not None:
            conditions.append(Job.id >= ulid_floor(self.created_from))
        if self.created_to is not None:
            conditions.append(Job.id < ulid_floor(self.created_to))
        return conditions

    def branches(self) -> list[list[ColumnElement[bool]]]:
        """Parts of the matching jobs, each one index walk in id order, merged by the caller
        (an IN list or an OR would make the planner sort every match)."""
        parts: list[list[list[ColumnElement[bool]]]] = []
        if self.task_names is not None:
            task = unindexed(Job.task_name) if self.narrow else Job.task_name
            parts.append([[task == name] for name in self.task_names])
        if self.root_id is not None:
            # A root's own row has no root_id: it is the flow's first job.
            parts.append([[Job.root_id == self.root_id], [Job.id == self.root_id]])
        return [list(itertools.chain(*combination)) for combination in itertools.product(*parts)]


@dataclass
class JobPage:
    rows: list[Row[Any]]
    newer: str | None  # cursor for the page before (newer jobs), if any
    older: str | None  # cursor for the page after (older jobs), if any


async def job_page(
    session: AsyncSession,
    where: JobFilter,
    *,
    limit: int,
    before: str | None = None,
    after: str | None = None,
) -> JobPage:
    """One page of jobs, newest first: below `before`, or the page just above `after`."""
    branches = where.branches()
    if not branches:
        return JobPage([], None, None)
    ascending = after is not None and before is None
    base = where.conditions()
    if before is not None:
        base.append(Job.id < before)
    elif after is not None:
        base.append(Job.id > after)
    order = Job.id.asc() if ascending else Job.id.desc()
    queries = [select(*ROW_COLUMNS).where(*base, *branch) for branch in branches]
    results = [
        list(await session.execute(query.order_by(order).limit(limit + 1))) for query in queries
    ]
    merged = list(heapq.merge(*results, key=lambda row: row.id, reverse=not ascending))
    rows, more = merged[:limit], len(merged) > limit
    if ascending and not more:
        # Nothing newer than this page: it is the first page, shown in full.
        return await job_page(session, where, limit=limit)
    if ascending:
        rows.reverse()
        newer, older = (rows[0].id if more and rows else None), (rows[-1].id if rows else None)
    else:
        newer = rows[0].id if rows and (before is not None) else None
        older = rows[-1].id if more and rows else None
    return JobPage(rows, newer, older)


@dataclass
class Overview:
    counts: dict[str, int]
    count_cap: int
    per_minute: list[tuple[datetime, int, int]]  # minute, completed, failed
    pending: int
    oldest_pending_at: datetime | None
    running: list[Row[Any]]
    failures: list[Row[Any]]
    workers: list[WorkerRead] = field(default_factory=list)


async def overview(
    session: AsyncSession, now: datetime, *, count_cap: int, worker_timeout: float
) -> Overview:
    counts = await capped_counts(session, count_cap, STATUSES)
    oldest = (
        await session.execute(
            select(Job.created_at).where(Job.status == "pending").order_by(Job.id).limit(1)
        )
    ).scalar_one_or_none()
    running = await _newest(session, ("running", "canceling"), limit=20)
    failures = list(
        await session.execute(
            select(*ROW_COLUMNS)
            .where(Job.status == "failed")
            .order_by(Job.finished_at.desc())
            .limit(10)
        )
    )
    return Overview(
        counts=counts,
        count_cap=count_cap,
        per_minute=await _per_minute(session, now),
        pending=counts["pending"],
        oldest_pending_at=oldest,
        running=running,
        failures=failures,
        workers=await workers(session, now - timedelta(seconds=worker_timeout)),
    )


async def _newest(session: AsyncSession, statuses: Sequence[str], *, limit: int) -> list[Row[Any]]:
    """The newest jobs in any of `statuses`: one index walk per status, merged (with an IN
    list the planner would walk the whole id index instead)."""
    results = [
        list(
            await session.execute(
                select(*ROW_COLUMNS)
                .where(Job.status == status)
                .order_by(Job.id.desc())
                .limit(limit)
            )
        )
        for status in statuses
    ]
    return list(heapq.merge(*results, key=lambda row: row.id, reverse=True))[:limit]


async def _per_minute(session: AsyncSession, now: datetime) -> list[tuple[datetime, int, int]]:
    """Completed and failed jobs in each of the last 60 minutes (oldest first)."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=60)
    sqlite = session.get_bind().dialect.name == "sqlite"
    # SQLite stores `YYYY-MM-DD HH:MM:SS.ffffff` text: its first 16 characters are the minute.
    finished = Job.finished_at
    minute = func.substr(finished, 1, 16) if sqlite else func.date_trunc("minute", finished)
    rows = await session.execute(
        select(minute, Job.status, func.count())
        .where(Job.status.in_(("completed", "failed")), Job.finished_at >= start)
        .group_by(minute, Job.status)
    )
    buckets = {start + timedelta(minutes=i): [0, 0] for i in range(60)}
    for at, status, count in rows:
        when = (
            datetime.strptime(at, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
            if isinstance(at, str)
            else at.astimezone(UTC)
        )
        if when in buckets:
            buckets[when][0 if status == "completed" else 1] += int(count)
    return [(when, done, failed) for when, (done, failed) in buckets.items()]


async def workers(session: AsyncSession, cutoff: datetime) -> list[WorkerRead]:
    """The workers table: live workers first, then those stopped or expired lately (newest
    first), at most `WORKERS_SHOWN` in all."""
    repository = WorkerRepository(session)
    alive, _ = await repository.list_page(alive=True, cutoff=cutoff, limit=WORKERS_SHOWN, offset=0)
    gone: list[WorkerRecord] = []
    if len(alive) < WORKERS_SHOWN:
        gone, _ = await repository.list_page(
            alive=False, cutoff=cutoff, limit=WORKERS_SHOWN - len(alive), offset=0
        )
    return [WorkerRead.from_record(record, cutoff) for record in (*alive, *gone)]


@dataclass
class JobView:
    job: Job
    attempts: list[JobAttempt]
    timeline: list[JobEvent]
    logs: list[JobEvent]
    artifacts: list[Row[str, datetime]]
    run_record: Any
    flow: FlowView


async def job_view(session: AsyncSession, job_id: str, *, log_tail: int) -> JobView | None:
    job = (await session.scalars(select(Job).where(Job.id == job_id))).one_or_none()
    if job is None:
        return None
    attempts = list(
        await session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.attempt)
        )
    )
    timeline = list(
        await session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.type.not_in(NOT_TIMELINE))
            .order_by(JobEvent.seq.desc())
            .limit(200)
        )
    )
    logs = list(
        await session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.type.in_(LOG_TYPES))
            .order_by(JobEvent.seq.desc())
            .limit(log_tail)
        )
    )
    artifacts = list(
        await session.execute(
            select(Artifact.id, Artifact.created_at)
            .where(Artifact.job_id == job_id)
            .order_by(Artifact.id.desc())
            .limit(20)
        )
    )
    record = None
    if job.result_artifact_id is not None:
        record = (
            await session.execute(
                select(Artifact.data).where(Artifact.id == job.result_artifact_id)
            )
        ).scalar_one_or_none()
    flow = await flow_view(session, job, shown=CHILDREN_SHOWN, cap=CHILDREN_COUNT_CAP)
    return JobView(job, attempts, timeline[::-1], logs[::-1], artifacts, record, flow)
