"""Claiming: pending jobs become running for one worker, within every concurrency limit.

A worker claims only jobs of tasks it has registered (a job of a task no worker knows stays
pending until a worker that has it starts).
"""

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Integer, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.db.base import UTCDateTime
from app.jobs.events import EventType
from app.jobs.limits import ConcurrencyLimits
from app.jobs.models import JobStatus
from app.jobs.repository import JobRepository
from app.jobs.store import flows
from app.jobs.store.claimed import CLAIMED_COLUMNS, ClaimedJob, claim_order
from app.jobs.store.effects import Effects
from app.jobs.store.rows import JOBS, event_row, insert_events

# Serialises limited claims across workers on PostgreSQL (a transaction-scoped advisory lock).
LIMITED_CLAIM_LOCK = 0x7A5C_E8EC


# The claim without limits, built once: the next eligible pending jobs become running.
_CANDIDATES = (
    select(JOBS.c.id)
    .where(
        JOBS.c.status == JobStatus.PENDING,
        JOBS.c.run_at <= bindparam("b_now", type_=UTCDateTime()),
        JOBS.c.task_name.in_(bindparam("b_names", expanding=True)),
    )
    .order_by(JOBS.c.priority.desc(), JOBS.c.run_at, JOBS.c.id)
    .limit(bindparam("b_limit", type_=Integer()))
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    update(JOBS)
    .where(JOBS.c.id.in_(_CANDIDATES.scalar_subquery()))
    .values(
        status=JobStatus.RUNNING,
        worker_id=bindparam("b_worker_id"),
        lease_expires_at=bindparam("b_lease_until", type_=UTCDateTime()),
        started_at=bindparam("b_now", type_=UTCDateTime()),
        attempts=JOBS.c.attempts + 1,
        event_seq=JOBS.c.event_seq + 1,
    )
    .returning(*CLAIMED_COLUMNS)
)


async def claim(
    session: AsyncSession,
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    limits: ConcurrencyLimits,
    task_names: Collection[str],
) -> tuple[list[ClaimedJob], Effects]:
    """Claim up to `limit` eligible jobs of `task_names`, each with its `started` event."""
    now = utcnow()
    lease_until = now + timedelta(seconds=lease_seconds)
    effects = Effects()
    if not task_names or limit <= 0:
        return [], effects
    names = sorted(task_names)
    if not limits.active:
        params = {
            "b_now": now,
            "b_names": names,
            "b_limit": limit,
            "b_worker_id": worker_id,
            "b_lease_until": lease_until,
        }
        rows = await session.execute(_CLAIM, params)
        jobs = [ClaimedJob(now, worker_id, lease_until, *row) for row in rows]
        jobs.sort(key=claim_order)
    else:
        jobs = await _claim_limited(session, worker_id, limit, limits, names, now, lease_until)
    await insert_events(
        session,
        [
            event_row(
                job.id,
                job.event_seq,
                EventType.STARTED,
                {"attempt": job.attempts, "worker_id": worker_id},
                now,
            )
            for job in jobs
        ],
    )
    effects.changed = [job.id for job in jobs]
    effects.merge(await flows.children_started(session, jobs))
    return jobs, effects


async def _claim_limited(
    session: AsyncSession,
    worker_id: str,
    limit: int,
    limits: ConcurrencyLimits,
    names: list[str],
    now: datetime,
    lease_until: datetime,
) -> list[ClaimedJob]:
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": LIMITED_CLAIM_LOCK}
        )
    counts = await JobRepository(session).active_counts()
    claimed: list[ClaimedJob] = []
    # A few rounds: candidates skipped for a full limit make room for others further down.
    for _ in range(4):
        wanted = limit - len(claimed)
        allowed = [name for name in names if name not in limits.blocked(counts)]
        candidates = await _pending_candidates(session, now, wanted * 4, allowed)
        picked: list[str] = []
        for job_id, task_name in candidates:
            if len(picked) == wanted:
                break
            if limits.has_room(task_name, counts):
                picked.append(job_id)
                counts[task_name] = counts.get(task_name, 0) + 1
        if picked:
            condition = JOBS.c.id.in_(picked) & (JOBS.c.status == JobStatus.PENDING)
            claimed += await _mark_running(session, condition, worker_id, now, lease_until)
        if len(claimed) >= limit or len(candidates) < wanted * 4:
            break
    claimed.sort(key=claim_order)
    return claimed


async def _pending_candidates(
    session: AsyncSession, now: datetime, limit: int, task_names: Sequence[str]
) -> list[tuple[str, str]]:
    """(id, task_name) of the next eligible pending jobs of `task_names`, in claim order."""
    if not task_names:
        return []
    query = (
        select(JOBS.c.id, JOBS.c.task_name)
        .where(
            JOBS.c.status == JobStatus.PENDING,
            JOBS.c.run_at <= now,
            JOBS.c.task_name.in_(list(task_names)),
        )
        .order_by(JOBS.c.priority.desc(), JOBS.c.run_at, JOBS.c.id)
        .limit(limit)
    )
    return [(job_id, task_name) for job_id, task_name in await session.execute(query)]


async def _mark_running(
    session: AsyncSession,
    condition: ColumnElement[bool],
    worker_id: str,
    now: datetime,
    lease_until: datetime,
) -> list[ClaimedJob]:
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
        .returning(*CLAIMED_COLUMNS)
    )
    # Plain values: only the columns an attempt reads, and those the claim itself set.
    jobs = [ClaimedJob(now, worker_id, lease_until, *row) for row in await session.execute(stmt)]
    jobs.sort(key=claim_order)
    return jobs
