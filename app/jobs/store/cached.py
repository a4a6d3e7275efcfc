"""Admitting a request through the result cache, in one transaction with the job it creates.

A cache entry points a key at the latest job run for it. A request finds that job pending or
running (it joins it: the same job id), completed within the task's `cache_ttl` (a hit: a new
job, `completed` at once, with `cached_from` and its own result artifact), or neither (a miss:
a new pending job, and the entry now points at it). The entry's primary key and a row lock
decide races: of ten identical concurrent requests, one creates the job.
"""

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.models import RESULT_NAME, Artifact
from app.core.clock import isoformat, new_id, utcnow
from app.db.base import table_of
from app.db.database import Database
from app.jobs.cache import ENTRIES, Admission, CachePlan
from app.jobs.cache_models import CacheEntry
from app.jobs.callback_store import add_delivery
from app.jobs.events import EventType
from app.jobs.models import ACTIVE_STATUSES, Job, JobStatus
from app.jobs.store.effects import Effects
from app.jobs.store.queueing import queue_in
from app.jobs.store.rows import JOBS, event_row, insert_events, job_row

_IN_FLIGHT = {JobStatus.PENDING.value, *(s.value for s in ACTIVE_STATUSES)}


async def admit(database: Database, job: Job, plan: CachePlan | None) -> tuple[Admission, Effects]:
    """Queue `job` (with its callback outbox row) unless the cache answers the request; in
    the running task's session when there is one. The effects are for after the commit."""
    async with database.joined_transaction() as session:
        if plan is None:
            effects = await _insert_new(session, job)
            return Admission(job, True, "uncached"), effects
        job.cache_key = plan.key
        while True:
            entry = await _locked_entry(session, plan.key)
            if entry is None:
                first = await _insert_first(session, job, plan)
                if first is not None:
                    return first
                continue  # another request created the entry first: decide again
            source = await session.get(Job, entry.job_id)
            if source is not None and plan.mode == "use":
                answer = await _reuse(session, job, source, plan)
                if answer is not None:
                    return answer
            effects = await _insert_new(session, job)
            await session.execute(
                update(ENTRIES)
                .where(ENTRIES.c.cache_key == plan.key)
                .values(job_id=job.id, updated_at=job.created_at)
            )
            return Admission(job, True, "miss"), effects


async def forget(database: Database, task_name: str) -> int:
    """Drop every cache entry of a task; later requests run it again."""
    async with database.transaction() as session:
        result = await session.execute(delete(ENTRIES).where(ENTRIES.c.task_name == task_name))
    return int(getattr(result, "rowcount", 0))


async def _locked_entry(session: AsyncSession, key: str) -> CacheEntry | None:
    query = select(CacheEntry).where(CacheEntry.cache_key == key).with_for_update()
    entry = (await session.scalars(query.execution_options(populate_existing=True))).first()
    return entry


async def _insert_first(
    session: AsyncSession, job: Job, plan: CachePlan
) -> tuple[Admission, Effects] | None:
    """The first request for a key: the job and the entry together, or None if another
    transaction inserted the entry meanwhile (this one's job is rolled back)."""
    dialect = session.get_bind().dialect.name
    insert_entry = postgresql.insert if dialect == "postgresql" else sqlite.insert
    async with session.begin_nested() as savepoint:
        effects = await _insert_new(session, job)
        inserted = await session.execute(
            insert_entry(ENTRIES)
            .values(
                cache_key=plan.key,
                task_name=job.task_name,
                job_id=job.id,
                updated_at=job.created_at,
            )
            .on_conflict_do_nothing(index_elements=["cache_key"])
            .returning(ENTRIES.c.cache_key)
        )
        if inserted.first() is None:
            await savepoint.rollback()
            return None
    return Admission(job, True, "miss"), effects


async def _reuse(
    session: AsyncSession, job: Job, source: Job, plan: CachePlan
) -> tuple[Admission, Effects] | None:
    """Join the entry's job while it runs, or reuse its fresh successful result."""
    if source.status in _IN_FLIGHT:
        if job.callback_url is not None:
            return None  # a joined caller's callback would never be sent: run its own job
        return Admission(source, False, "joined"), Effects()
    fresh = source.finished_at is not None and utcnow() - source.finished_at < timedelta(
        seconds=plan.ttl
    )
    if source.status != JobStatus.COMPLETED or not fresh or source.result_artifact_id is None:
        return None
    record = await session.get(Artifact, source.result_artifact_id)
    if record is None or not isinstance(record.data, dict):
        return None
    await _insert_hit(session, job, source, record.data.get("result"))
    effects = Effects(changed=[job.id], finished=[(job.task_name, JobStatus.COMPLETED.value)])
    return Admission(job, True, "hit"), effects


async def _insert_new(session: AsyncSession, job: Job) -> Effects:
    (effects,) = await queue_in(session, [[job]])
    if job.callback_url is not None:
        await add_delivery(session, job.id, job.created_at)
    return effects


async def _insert_hit(session: AsyncSession, job: Job, source: Job, result: Any) -> None:
    """`job` becomes a completed job whose result is `source`'s: job, artifact, events."""
    now = job.created_at
    artifact_id = new_id()
    job.status = JobStatus.COMPLETED
    job.started_at = job.finished_at = now
    job.cached_from = source.id
    job.result_artifact_id = artifact_id
    job.event_seq = 2
    await session.execute(insert(JOBS), [job_row(job)])
    record = {"task_name": job.task_name, "params": job.params, "result": result, "error": None}
    await session.execute(
        insert(table_of(Artifact)),
        [
            {
                "id": artifact_id,
                "job_id": job.id,
                "name": RESULT_NAME,
                "data": record,
                "created_at": now,
            }
        ],
    )
    status = JobStatus.COMPLETED.value
    await insert_events(
        session,
        [
            event_row(
                job.id,
                1,
                EventType.CREATED,
                {"status": status, "run_at": isoformat(job.run_at), "cached_from": source.id},
                now,
            ),
            event_row(
                job.id,
                2,
                EventType.COMPLETED,
                {
                    "status": status,
                    "attempt": 0,
                    "error": None,
                    "result": artifact_id,
                    "cached_from": source.id,
                },
                now,
            ),
        ],
    )
    if job.callback_url is not None:
        await add_delivery(session, job.id, now)
