"""All job SQL: create, read, claim, renew, finish, recover. Flushes, never commits."""

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import JSONType, UTCDateTime, table_of
from app.jobs.models import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Job,
    JobAttempt,
    JobEvent,
    JobStatus,
)

JOBS = cast(Table, Job.__table__)
ACTIVE = [status.value for status in ACTIVE_STATUSES]
TERMINAL = [status.value for status in TERMINAL_STATUSES]


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job: Job) -> Job:
        self.session.add(job)
        await self.session.flush()
        return job

    async def add_many(self, jobs: Sequence[Job]) -> None:
        """Insert new jobs in one statement (Core, no identity-map bookkeeping)."""
        rows = [_row_with_defaults(job) for job in jobs]
        await self.session.execute(insert(JOBS), rows)

    async def get(self, job_id: str, *, for_update: bool = False) -> Job | None:
        query = select(Job).where(Job.id == job_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def get_by_idempotency_key(self, key: str) -> Job | None:
        return (
            await self.session.scalars(select(Job).where(Job.idempotency_key == key))
        ).one_or_none()

    async def list_page(
        self,
        *,
        status: str | None,
        task_name: str | None,
        limit: int,
        offset: int,
        parent_id: str | None = None,
    ) -> tuple[list[Job], int]:
        conditions = []
        if status is not None:
            conditions.append(Job.status == status)
        if task_name is not None:
            conditions.append(Job.task_name == task_name)
        if parent_id is not None:
            conditions.append(Job.parent_id == parent_id)
        rows = await self.session.scalars(
            select(Job).where(*conditions).order_by(Job.id.desc()).limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(Job).where(*conditions))
        return list(rows), total or 0

    async def claim(
        self, *, worker_id: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[Job]:
        """Mark up to `limit` eligible pending jobs running for `worker_id` and return them.

        Highest priority first, then earliest `run_at`, then oldest. On PostgreSQL the
        candidate rows are locked with SKIP LOCKED so concurrent claimers never share a job.
        """
        candidates = (
            select(Job.id)
            .where(Job.status == JobStatus.PENDING, Job.run_at <= now)
            .order_by(Job.priority.desc(), Job.run_at, Job.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return await self._mark_running(
            Job.id.in_(candidates.scalar_subquery()),
            worker_id=worker_id,
            now=now,
            lease_until=lease_until,
        )

    async def claim_ids(
        self, *, worker_id: str, job_ids: Sequence[str], now: datetime, lease_until: datetime
    ) -> list[Job]:
        """Claim exactly these pending jobs (those still pending)."""
        if not job_ids:
            return []
        return await self._mark_running(
            Job.id.in_(job_ids) & (Job.status == JobStatus.PENDING),
            worker_id=worker_id,
            now=now,
            lease_until=lease_until,
        )

    async def _mark_running(
        self,
        condition: ColumnElement[bool],
        *,
        worker_id: str,
        now: datetime,
        lease_until: datetime,
    ) -> list[Job]:
        """Start an attempt of the matching jobs; the `started` event number is taken here."""
        columns = JOBS.c
        stmt = (
            update(JOBS)
            .where(condition)
            .values(
                status=JobStatus.RUNNING,
                worker_id=worker_id,
                lease_expires_at=lease_until,
                started_at=now,
                attempts=columns.attempts + 1,
                event_seq=columns.event_seq + 1,
            )
            .returning(*columns)
        )
        # Core, not the ORM's bulk UPDATE: the rows become plain (transient) Job objects.
        jobs = [Job(**row._mapping) for row in await self.session.execute(stmt)]
        jobs.sort(key=lambda job: (-job.priority, job.run_at, job.id))
        return jobs

    async def renew_leases(
        self, *, worker_id: str, job_ids: Sequence[str], lease_until: datetime
    ) -> tuple[set[str], set[str]]:
        """Extend the leases this worker still holds.

        Returns the ids still held and, of those, the ids whose cancellation was requested.
        """
        if not job_ids:
            return set(), set()
        rows = await self.session.execute(
            update(JOBS)
            .where(
                JOBS.c.id.in_(job_ids),
                JOBS.c.worker_id == worker_id,
                JOBS.c.status.in_(ACTIVE),
            )
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

    async def held_by(self, worker_id: str, job_ids: Sequence[str]) -> dict[str, int]:
        """Which of `job_ids` this worker still holds, with their last event number; the rows
        are locked until the transaction ends."""
        if not job_ids:
            return {}
        rows = await self.session.execute(
            select(Job.id, Job.event_seq)
            .where(Job.id.in_(job_ids), Job.worker_id == worker_id, Job.status.in_(ACTIVE))
            .with_for_update()
        )
        return {job_id: event_seq for job_id, event_seq in rows}

    async def finish_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Record final states in one statement; rows hold id, status, error, artifact_id, now,
        seq (the job's new last event number).

        Callers check ownership first with `held_by` in the same transaction.
        """
        if not rows:
            return
        table = JOBS
        await self.session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                finished_at=bindparam("b_now", type_=UTCDateTime()),
                error=bindparam("b_error", type_=JSONType),
                result_artifact_id=bindparam("b_artifact_id"),
                lease_expires_at=None,
                event_seq=bindparam("b_seq"),
            ),
            [{f"b_{key}": value for key, value in row.items()} for row in rows],
        )

    async def retry_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Requeue failed attempts to run again; rows hold id, run_at, error, seq."""
        if not rows:
            return
        table = JOBS
        await self.session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status=JobStatus.PENDING,
                run_at=bindparam("b_run_at", type_=UTCDateTime()),
                error=bindparam("b_error", type_=JSONType),
                worker_id=None,
                lease_expires_at=None,
                event_seq=bindparam("b_seq"),
            ),
            [{f"b_{key}": value for key, value in row.items()} for row in rows],
        )

    async def release(self, *, worker_id: str, job_ids: Sequence[str], now: datetime) -> int:
        """Hand running jobs back to the queue without counting the attempt (shutdown)."""
        if not job_ids:
            return 0
        result = await self.session.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.worker_id == worker_id, Job.status.in_(ACTIVE))
            .values(
                status=JobStatus.PENDING,
                attempts=Job.attempts - 1,
                run_at=now,
                worker_id=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))

    async def lost(
        self, *, now: datetime, worker_ids: Sequence[str] = (), limit: int = 100
    ) -> list[Job]:
        """Running jobs whose lease expired, or whose worker is known to be dead."""
        condition = Job.lease_expires_at < now
        if worker_ids:
            condition = condition | Job.worker_id.in_(worker_ids)
        query = (
            select(Job)
            .where(Job.status.in_(ACTIVE), condition)
            .order_by(Job.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(await self.session.scalars(query))

    async def running_worker_ids(self) -> list[str]:
        rows = await self.session.scalars(
            select(Job.worker_id).where(Job.status.in_(ACTIVE)).distinct()
        )
        return [worker_id for worker_id in rows if worker_id is not None]

    async def delete(self, job_id: str) -> int:
        result = await self.session.execute(
            delete(Job)
            .where(Job.id == job_id, Job.status.in_(TERMINAL))
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))

    async def set_progress(self, job_id: str, fraction: float | None, message: str | None) -> None:
        await self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(ACTIVE))
            .values(progress=fraction, progress_message=message)
            .execution_options(synchronize_session=False)
        )

    async def active_counts(self) -> dict[str, int]:
        """Jobs held by workers right now, per task."""
        rows = await self.session.execute(
            select(Job.task_name, func.count())
            .where(Job.status.in_(ACTIVE))
            .group_by(Job.task_name)
        )
        return {task_name: count for task_name, count in rows}

    async def pending_candidates(
        self, *, now: datetime, limit: int, exclude_tasks: Collection[str]
    ) -> list[tuple[str, str]]:
        """(id, task_name) of the next eligible pending jobs, in claim order."""
        query = (
            select(Job.id, Job.task_name)
            .where(Job.status == JobStatus.PENDING, Job.run_at <= now)
            .order_by(Job.priority.desc(), Job.run_at, Job.id)
            .limit(limit)
        )
        if exclude_tasks:
            query = query.where(Job.task_name.not_in(list(exclude_tasks)))
        return [(job_id, task_name) for job_id, task_name in await self.session.execute(query)]

    async def add_attempts(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(table_of(JobAttempt)), list(rows))

    async def attempts_of(self, job_id: str) -> list[JobAttempt]:
        rows = await self.session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.attempt)
        )
        return list(rows)

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` finished jobs (with their artifacts) that ended before `cutoff`."""
        doomed = (
            select(Job.id)
            .where(Job.status.in_(TERMINAL), Job.finished_at < cutoff)
            .order_by(Job.finished_at)
            .limit(limit)
        )
        result = await self.session.execute(
            delete(Job)
            .where(Job.id.in_(doomed.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))

    async def events_after(self, job_id: str, *, after: int, limit: int) -> list[JobEvent]:
        rows = await self.session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(JobEvent.seq)
            .limit(limit)
        )
        return list(rows)

    async def events_page(
        self, job_id: str, *, types: Collection[str] | None, limit: int, offset: int
    ) -> tuple[list[JobEvent], int]:
        conditions = [JobEvent.job_id == job_id]
        if types is not None:
            conditions.append(JobEvent.type.in_(list(types)))
        rows = await self.session.scalars(
            select(JobEvent).where(*conditions).order_by(JobEvent.seq).limit(limit).offset(offset)
        )
        total = await self.session.scalar(
            select(func.count()).select_from(JobEvent).where(*conditions)
        )
        return list(rows), total or 0


def _row_with_defaults(job: Job) -> dict[str, Any]:
    """The job's column values, with column defaults where the object has none."""
    row: dict[str, Any] = {}
    for column in JOBS.columns:
        value = getattr(job, column.key)
        default = column.default
        if value is None and default is not None and default.is_scalar:
            value = getattr(default, "arg", None)
        row[column.key] = value
    return row
