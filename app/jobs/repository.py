"""Job reads: pages, one job, attempts, events. Every change of a job goes through the job
store (`app.jobs.store`)."""

from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, UnaryExpression, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import keys_within_budget, stored_bytes
from app.jobs.models import (
    ACTIVE_STATUSES,
    LEASED_STATUSES,
    TERMINAL_STATUSES,
    Job,
    JobAttempt,
    JobEvent,
    JobStatus,
)

JOBS = cast(Table, Job.__table__)
ACTIVE = [status.value for status in ACTIVE_STATUSES]
LEASED = [status.value for status in LEASED_STATUSES]
TERMINAL = [status.value for status in TERMINAL_STATUSES]


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, job_id: str, *, for_update: bool = False) -> Job | None:
        query = select(Job).where(Job.id == job_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def get_by_idempotency_key(self, key: str) -> Job | None:
        return (
            await self.session.scalars(select(Job).where(Job.idempotency_key == key))
        ).one_or_none()

    async def ids_by_idempotency_keys(self, keys: list[str]) -> dict[str, tuple[str, str | None]]:
        """{key: (job id, request hash)} of the jobs that hold any of `keys`."""
        found: dict[str, tuple[str, str | None]] = {}
        for start in range(0, len(keys), 500):
            rows = await self.session.execute(
                select(JOBS.c.idempotency_key, JOBS.c.id, JOBS.c.request_hash).where(
                    JOBS.c.idempotency_key.in_(keys[start : start + 500])
                )
            )
            for key, job_id, request_hash in rows:
                found[key] = (job_id, request_hash)
        return found

    async def list_page(
        self,
        *,
        status: str | None,
        task_name: str | None,
        limit: int,
        offset: int,
        max_bytes: int | None = None,
        count_max: int | None = None,
        parent_id: str | None = None,
    ) -> tuple[list[Job], int]:
        """Newest first (with `parent_id`: that job's children in spawn order), at most
        `limit` jobs and (when given) `max_bytes` of their big columns, at least one; the
        total counts at most `count_max` jobs past the page."""
        conditions = []
        if status is not None:
            conditions.append(Job.status == status)
        if task_name is not None:
            conditions.append(Job.task_name == task_name)
        order: list[UnaryExpression[Any]] = [Job.id.desc()]
        if parent_id is not None:
            conditions.append(Job.parent_id == parent_id)
            # A job's children in spawn order (a child's id is derived from its key).
            order = [Job.created_at.asc(), Job.map_index.asc(), Job.id.asc()]
        dialect = self.session.get_bind().dialect.name
        size = (
            stored_bytes(Job.params, dialect)
            + stored_bytes(Job.error, dialect)
            + stored_bytes(Job.progress_message, dialect)
        )
        sizes = select(Job.id, size).where(*conditions).order_by(*order)

        async def sizes_at(skip: int, count: int) -> list[Any]:
            return list(await self.session.execute(sizes.limit(count).offset(offset + skip)))

        ids = await keys_within_budget(sizes_at, limit=limit, max_bytes=max_bytes)
        jobs = []
        if ids:
            jobs = list(
                await self.session.scalars(select(Job).where(Job.id.in_(ids)).order_by(*order))
            )
        matching = select(Job.id).where(*conditions)
        if count_max is not None:
            matching = matching.limit(offset + limit + count_max)
        total = await self.session.scalar(select(func.count()).select_from(matching.subquery()))
        return jobs, total or 0

    async def running_worker_ids(self) -> list[str]:
        rows = await self.session.scalars(
            select(Job.worker_id).where(Job.status.in_(LEASED)).distinct()
        )
        return [worker_id for worker_id in rows if worker_id is not None]

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

    async def attempts_of(self, job_id: str) -> list[JobAttempt]:
        rows = await self.session.scalars(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(JobAttempt.attempt)
        )
        return list(rows)

    async def events_after(
        self, job_id: str, *, after: int, limit: int, max_bytes: int | None = None
    ) -> list[JobEvent]:
        """Events after `after`, in order: at most `limit` and (when given) `max_bytes` of
        their data, at least one."""
        conditions = [JobEvent.job_id == job_id, JobEvent.seq > after]
        if max_bytes is None:
            rows = await self.session.scalars(
                select(JobEvent).where(*conditions).order_by(JobEvent.seq).limit(limit)
            )
            return list(rows)
        seqs = await self._event_seqs(conditions, offset=0, limit=limit, max_bytes=max_bytes)
        if not seqs:
            return []
        rows = await self.session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.seq.in_(seqs))
            .order_by(JobEvent.seq)
        )
        return list(rows)

    async def events_page(
        self,
        job_id: str,
        *,
        types: Collection[str] | None,
        limit: int,
        offset: int,
        max_bytes: int | None = None,
    ) -> tuple[list[JobEvent], int]:
        """The job's events in order, at most `limit` and (when given) `max_bytes` of their
        data, at least one; with the exact total."""
        conditions = [JobEvent.job_id == job_id]
        if types is not None:
            conditions.append(JobEvent.type.in_(list(types)))
        seqs = await self._event_seqs(conditions, offset=offset, limit=limit, max_bytes=max_bytes)
        events = []
        if seqs:
            events = list(
                await self.session.scalars(
                    select(JobEvent)
                    .where(JobEvent.job_id == job_id, JobEvent.seq.in_(seqs))
                    .order_by(JobEvent.seq)
                )
            )
        total = await self.session.scalar(
            select(func.count()).select_from(JobEvent).where(*conditions)
        )
        return events, total or 0

    async def _event_seqs(
        self, conditions: list[Any], *, offset: int, limit: int, max_bytes: int | None
    ) -> list[int]:
        dialect = self.session.get_bind().dialect.name
        sizes = (
            select(JobEvent.seq, stored_bytes(JobEvent.data, dialect))
            .where(*conditions)
            .order_by(JobEvent.seq)
        )

        async def sizes_at(skip: int, count: int) -> list[Any]:
            return list(await self.session.execute(sizes.limit(count).offset(offset + skip)))

        return await keys_within_budget(sizes_at, limit=limit, max_bytes=max_bytes)

    async def log_usage(self, job_id: str) -> tuple[int, int]:
        """Log lines stored for the job, and the characters of their messages."""
        lines, size = (
            await self.session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(func.length(JobEvent.data["message"].as_string())), 0),
                ).where(JobEvent.job_id == job_id, JobEvent.type == "log")
            )
        ).one()
        return int(lines), int(size)
