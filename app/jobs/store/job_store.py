"""`JobStore`: the one owner of every change of a job's state.

Each change is one named method that writes the status, the next event(s) and the NOTIFY in
one transaction, with Core statements. Methods ending in `_in` write in the caller's session
(a group commit) and return the `Effects` for the caller to apply once it has committed; the
others own their transaction and apply their effects after it commits. Reads live in
`JobRepository`.
"""

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.db.batching import BatchWriter, GroupCommit
from app.db.database import Database, ambient_session
from app.jobs.cache import Admission, CachePlan
from app.jobs.context import ProgressUpdate
from app.jobs.events import EventBus
from app.jobs.limits import ConcurrencyLimits
from app.jobs.models import Job
from app.jobs.store import attempts, cached, claims, flow_ends, lifecycle, rows
from app.jobs.store.attempts import AttemptEnd, Recorded
from app.jobs.store.claimed import ClaimedJob
from app.jobs.store.effects import AfterCommit, Effects
from app.jobs.store.fires import Fire, insert_fire
from app.jobs.store.flow_methods import FlowTransitions
from app.jobs.store.queueing import JobRow, queue_in, queue_rows_in


def _rows_of(jobs: Sequence[Job]) -> list[JobRow]:
    for job in jobs:
        job.event_seq = 1  # the `created` event the insert writes
    return [rows.job_row(job) for job in jobs]


class JobStore(FlowTransitions):
    """Queue, claim, renew, finish, retry, release, recover, cancel, delete, append events,
    and delete old jobs. No other module writes jobs, attempts, events or result artifacts."""

    def __init__(self, database: Database, after_commit: AfterCommit | None = None) -> None:
        self.database = database
        self.after_commit = after_commit or AfterCommit(EventBus())
        # One group commit for the process's writes of job state: the worker's ends and
        # claims (see `Worker`) share transactions with submits, so an idle worker's claim
        # rides in the transaction that queues the job, right after its insert.
        self.group = GroupCommit(database)
        self._queue: BatchWriter[Sequence[JobRow], Effects] = self.group.writer(queue_rows_in)

    @property
    def bus(self) -> EventBus:
        return self.after_commit.bus

    # Queue ------------------------------------------------------------------------------

    async def queue(self, jobs: Sequence[Job]) -> None:
        """Insert new pending jobs (one or many) with their `created` events, in one
        transaction. Inside a running task's session the jobs join its transaction, and their
        effects wait for its commit. `IntegrityError` when an idempotency key is taken."""
        session = ambient_session.get()
        if session is not None:
            async with session.begin_nested():
                effects = await queue_in(session, [jobs])
            self.after_commit.defer(session, effects[0])
            return
        # Concurrent submits share transactions (group commit).
        self.after_commit.apply(await self._queue.submit(_rows_of(jobs)))

    async def queue_rows(self, rows: Sequence[JobRow]) -> None:
        """`queue` for new jobs given as full rows (`queueing.new_job_row`): no ORM objects."""
        session = ambient_session.get()
        if session is not None:
            async with session.begin_nested():
                effects = await queue_rows_in(session, [rows])
            self.after_commit.defer(session, effects[0])
            return
        self.after_commit.apply(await self._queue.submit(rows))

    async def admit(self, job: Job, plan: CachePlan | None) -> Admission:
        """Queue `job` through the result cache (a hit, a join of the matching job in flight,
        or a new run) with its callback outbox row, in one transaction; the effects follow
        the commit (of the running task's session, when the job is queued inside one)."""
        admission, effects = await cached.admit(self.database, job, plan)
        session = ambient_session.get()
        if session is not None:
            self.after_commit.defer(session, effects)
        else:
            self.after_commit.apply(effects)
        return admission

    async def forget_cache(self, task_name: str) -> int:
        """Drop every cache entry of a task; later requests run it again."""
        return await cached.forget(self.database, task_name)

    # Claim and run ----------------------------------------------------------------------

    @staticmethod
    async def claim_in(
        session: AsyncSession,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        limits: ConcurrencyLimits,
        task_names: Collection[str],
    ) -> tuple[list[ClaimedJob], Effects]:
        """Mark up to `limit` eligible pending jobs of `task_names` running for `worker_id`
        (highest priority, then earliest `run_at`, then oldest), within every limit."""
        return await claims.claim(
            session,
            worker_id=worker_id,
            limit=limit,
            lease_seconds=lease_seconds,
            limits=limits,
            task_names=task_names,
        )

    @staticmethod
    async def queue_fire_in(
        session: AsyncSession, fire: Fire, *, now: datetime | None = None
    ) -> str | None:
        """Queue a schedule's fire in the caller's transaction: one job per (schedule, fire
        time), whichever process gets there first; None when it was already queued. The
        caller publishes and counts the new job once its transaction commits."""
        return await insert_fire(session, fire, now=now)

    @staticmethod
    async def finish_in(session: AsyncSession, ends: Sequence[AttemptEnd]) -> list[Recorded]:
        """Write ended attempts: finished (status, artifact, terminal event) or retrying."""
        return await attempts.finish_attempts(session, ends)

    async def renew(
        self, worker_id: str, job_ids: Sequence[str], lease_seconds: float
    ) -> tuple[set[str], set[str]]:
        """Heartbeat: extend this worker's leases; returns (held, cancel requested)."""
        if not job_ids:
            return set(), set()
        lease_until = utcnow() + timedelta(seconds=lease_seconds)
        async with self.database.transaction() as session:
            return await lifecycle.renew(session, worker_id, job_ids, lease_until)

    async def release(self, worker_id: str, job_ids: Sequence[str]) -> None:
        """Shutdown: hand running jobs back to the queue without using their attempt."""
        if not job_ids:
            return
        async with self.database.transaction() as session:
            effects = await lifecycle.release(session, worker_id, job_ids, utcnow())
        self.after_commit.apply(effects)

    async def recover_lost(self, dead_worker_ids: Sequence[str] = ()) -> Effects:
        """Re-queue (or end) jobs whose lease expired or whose worker is known to be dead."""
        async with self.database.transaction() as session:
            effects = await lifecycle.recover_lost(session, utcnow(), dead_worker_ids)
        self.after_commit.apply(effects)
        return effects

    async def append(
        self,
        job_id: str,
        events: Sequence[tuple[str, dict[str, Any]]],
        progress: ProgressUpdate | None = None,
    ) -> None:
        """A running job's progress and events (progress, log lines), in order."""
        async with self.database.transaction() as session:
            effects = await lifecycle.append(session, job_id, events, progress)
        self.after_commit.apply(effects)

    @staticmethod
    async def append_in(
        session: AsyncSession, job_id: str, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> Effects:
        """Append events to a job in the caller's transaction (e.g. `artifact_created` with
        the named artifact it describes); the effects are for after the commit."""
        last = await rows.append_events(session, job_id, events)
        return Effects(changed=[job_id] if last else [])

    # Cancel and delete ------------------------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        """Cancel a pending job now, or ask its worker to stop it; `ConflictError` when it
        has finished, `NotFoundError` when it does not exist."""
        async with self.database.transaction() as session:
            job, effects = await flow_ends.cancel_tree(session, job_id, utcnow())
        self.after_commit.apply(effects)
        assert job is not None  # noqa: S101 - the target is always canceled or refused
        return job

    async def delete(self, job_id: str) -> None:
        """Delete a finished job and its artifacts; `ConflictError` while it is not finished."""
        async with self.database.transaction() as session:
            await lifecycle.delete_job(session, job_id)

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> int:
        """Retention: delete up to `limit` jobs that finished before `cutoff`."""
        async with self.database.transaction() as session:
            return await lifecycle.delete_finished_before(session, cutoff, limit)
