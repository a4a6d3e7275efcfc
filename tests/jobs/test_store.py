"""JobStore: every change of a job's state, through its named methods, on SQLite and PostgreSQL."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow
from app.core.errors import ConflictError, NotFoundError
from app.db.database import Database
from app.jobs.context import ProgressUpdate
from app.jobs.decisions import Finish, Retry
from app.jobs.events import EventBus
from app.jobs.limits import ConcurrencyLimits
from app.jobs.models import Job, JobAttempt, JobEvent, JobStatus
from app.jobs.store import AfterCommit, AttemptEnd, JobStore
from app.jobs.store.claimed import ClaimedJob
from tests.jobs.helpers import ago, count_jobs, fetch_job, insert_job, later, make_job

WORKER = "host-a:100:aaaaaa"
OTHER = "host-b:200:bbbbbb"
TASKS = ("noop", "a", "b", "c", "d")


@pytest.fixture
def db(database: Database) -> Database:
    """The migrated database of the backend under test (SQLite, then PostgreSQL)."""
    return database


@pytest.fixture
def store(db: Database) -> JobStore:
    return JobStore(db, AfterCommit(EventBus()))


async def claim(
    db: Database,
    *,
    worker_id: str = WORKER,
    limit: int = 10,
    lease_seconds: float = 30,
    tasks: tuple[str, ...] = TASKS,
) -> list[ClaimedJob]:
    async with db.transaction() as session:
        jobs, _ = await JobStore.claim_in(
            session,
            worker_id=worker_id,
            limit=limit,
            lease_seconds=lease_seconds,
            limits=ConcurrencyLimits(),
            task_names=tasks,
        )
    return jobs


async def events_of(db: Database, job_id: str) -> list[tuple[int, str]]:
    async with db.session() as session:
        rows = await session.execute(
            select(JobEvent.seq, JobEvent.type)
            .where(JobEvent.job_id == job_id)
            .order_by(JobEvent.seq)
        )
        return [(seq, type_) for seq, type_ in rows]


async def test_queue_inserts_jobs_with_their_created_event(db: Database, store: JobStore) -> None:
    jobs = [make_job(event_seq=1), make_job(event_seq=1)]

    await store.queue(jobs)

    for job in jobs:
        assert (await fetch_job(db, job.id)).status == JobStatus.PENDING
        assert await events_of(db, job.id) == [(1, "created")]


async def test_claim_orders_by_priority_then_run_at_then_id(db: Database) -> None:
    low_old = await insert_job(db, priority=0, run_at=ago(30))
    high_late = await insert_job(db, priority=5, run_at=ago(10))
    high_early_first = await insert_job(db, priority=5, run_at=ago(20))
    same_run_at = high_early_first.run_at
    high_early_second = await insert_job(db, priority=5, run_at=same_run_at)
    negative = await insert_job(db, priority=-1, run_at=ago(60))

    claimed = await claim(db)

    assert [job.id for job in claimed] == [
        high_early_first.id,
        high_early_second.id,
        high_late.id,
        low_old.id,
        negative.id,
    ]


async def test_claim_skips_jobs_scheduled_for_later(db: Database) -> None:
    due = await insert_job(db, run_at=ago(1))
    future = await insert_job(db, run_at=later(3600), priority=100)

    claimed = await claim(db)

    assert [job.id for job in claimed] == [due.id]
    assert (await fetch_job(db, future.id)).status == JobStatus.PENDING


async def test_claim_takes_only_pending_jobs(db: Database) -> None:
    await insert_job(db, status=JobStatus.RUNNING, worker_id=OTHER, lease_expires_at=later(30))
    await insert_job(db, status=JobStatus.COMPLETED, finished_at=utcnow())
    await insert_job(db, status=JobStatus.CANCELED, finished_at=utcnow())
    pending = await insert_job(db)

    assert [job.id for job in await claim(db)] == [pending.id]


async def test_claim_takes_only_jobs_of_the_workers_tasks(db: Database) -> None:
    known = await insert_job(db, task_name="a", run_at=ago(2))
    unknown = await insert_job(db, task_name="elsewhere", run_at=ago(5), priority=10)

    assert [job.id for job in await claim(db, tasks=("a",))] == [known.id]
    assert await claim(db, tasks=()) == []
    assert (await fetch_job(db, unknown.id)).status == JobStatus.PENDING


async def test_claim_respects_the_limit(db: Database) -> None:
    jobs = [await insert_job(db, run_at=ago(10 - i)) for i in range(5)]

    first = await claim(db, limit=2)
    second = await claim(db, limit=2)
    third = await claim(db, limit=2)
    fourth = await claim(db, limit=2)

    assert [job.id for job in first] == [jobs[0].id, jobs[1].id]
    assert [job.id for job in second] == [jobs[2].id, jobs[3].id]
    assert [job.id for job in third] == [jobs[4].id]
    assert fourth == []


async def test_claim_marks_the_job_running_with_its_started_event(db: Database) -> None:
    job = await insert_job(db, attempts=1, max_attempts=3, event_seq=1)
    before = utcnow()

    [claimed] = await claim(db, lease_seconds=42)

    assert claimed.id == job.id
    stored = await fetch_job(db, job.id)
    assert stored.status == JobStatus.RUNNING
    assert stored.worker_id == WORKER
    assert stored.started_at is not None
    assert stored.started_at >= before
    assert stored.lease_expires_at == stored.started_at + timedelta(seconds=42)
    assert (stored.attempts, claimed.attempts) == (2, 2)
    assert await events_of(db, job.id) == [(2, "started")]


async def test_concurrent_claims_never_share_a_job(db: Database) -> None:
    jobs = [await insert_job(db) for _ in range(20)]

    batches = await asyncio.gather(
        *(claim(db, worker_id=f"host:{n}:worker", limit=3) for n in range(10))
    )

    claimed_ids = [job.id for batch in batches for job in batch]
    assert len(claimed_ids) == len(set(claimed_ids)), "a job was claimed twice"
    assert sorted(claimed_ids) == sorted(job.id for job in jobs)
    for batch, n in zip(batches, range(10), strict=True):
        for job in batch:
            assert (await fetch_job(db, job.id)).worker_id == f"host:{n}:worker"
            assert (await fetch_job(db, job.id)).attempts == 1


async def test_renew_returns_held_and_cancel_requested_ids(db: Database, store: JobStore) -> None:
    held = await insert_job(db, status=JobStatus.RUNNING, worker_id=WORKER, lease_expires_at=ago(1))
    to_cancel = await insert_job(
        db,
        status=JobStatus.RUNNING,
        worker_id=WORKER,
        lease_expires_at=later(5),
        cancel_requested_at=utcnow(),
    )
    taken = await insert_job(
        db, status=JobStatus.RUNNING, worker_id=OTHER, lease_expires_at=later(5)
    )
    finished = await insert_job(
        db, status=JobStatus.COMPLETED, worker_id=WORKER, finished_at=utcnow()
    )

    still_held, canceled = await store.renew(
        WORKER, [held.id, to_cancel.id, taken.id, finished.id], lease_seconds=60
    )

    assert still_held == {held.id, to_cancel.id}
    assert canceled == {to_cancel.id}
    renewed = (await fetch_job(db, held.id)).lease_expires_at
    assert renewed is not None
    assert renewed > later(50)
    assert (await fetch_job(db, taken.id)).lease_expires_at == taken.lease_expires_at
    assert await store.renew(WORKER, [], lease_seconds=30) == (set(), set())


async def _running(db: Database, worker_id: str = WORKER, **values: object) -> Job:
    fields: dict[str, object] = {
        "status": JobStatus.RUNNING,
        "worker_id": worker_id,
        "attempts": 1,
        "lease_expires_at": later(30),
        "started_at": ago(1),
        "event_seq": 2,
    }
    fields.update(values)
    return await insert_job(db, **fields)


async def finish(db: Database, *ends: AttemptEnd) -> list[bool]:
    async with db.transaction() as session:
        recorded = await JobStore.finish_in(session, ends)
    return [r.held for r in recorded]


async def test_finish_records_each_jobs_end_with_its_artifact(db: Database) -> None:
    ok = await _running(db)
    bad = await _running(db)
    untouched = await _running(db, OTHER)
    error = {"type": "ValueError", "message": "boom", "traceback": "Traceback ..."}

    held = await finish(
        db,
        AttemptEnd(WORKER, ok, Finish(JobStatus.COMPLETED), result={"answer": 42}),
        AttemptEnd(WORKER, bad, Finish(JobStatus.FAILED, error)),
        AttemptEnd(WORKER, untouched, Finish(JobStatus.COMPLETED)),
    )

    assert held == [True, True, False]
    stored_ok = await fetch_job(db, ok.id)
    assert stored_ok.status == JobStatus.COMPLETED
    assert stored_ok.error is None
    assert stored_ok.lease_expires_at is None
    assert stored_ok.finished_at is not None
    async with db.session() as session:
        artifact = await session.get(Artifact, stored_ok.result_artifact_id)
    assert artifact is not None
    assert artifact.data == {
        "task_name": "noop",
        "params": {},
        "result": {"answer": 42},
        "error": None,
    }
    stored_bad = await fetch_job(db, bad.id)
    assert stored_bad.status == JobStatus.FAILED
    assert stored_bad.error == {"type": "ValueError", "message": "boom"}
    assert await events_of(db, bad.id) == [(3, "failed")]
    assert (await fetch_job(db, untouched.id)).status == JobStatus.RUNNING
    async with db.session() as session:
        attempts = await session.scalar(select(func.count()).select_from(JobAttempt))
    assert attempts == 2


async def test_retry_requeues_with_the_error(db: Database) -> None:
    job = await _running(db, max_attempts=3)
    run_at = later(5)

    await finish(db, AttemptEnd(WORKER, job, Retry(run_at, {"type": "E", "message": "m"})))

    stored = await fetch_job(db, job.id)
    assert (stored.status, stored.run_at, stored.attempts) == (JobStatus.PENDING, run_at, 1)
    assert stored.error == {"type": "E", "message": "m"}
    assert stored.worker_id is None
    assert stored.lease_expires_at is None
    assert stored.result_artifact_id is None
    assert await events_of(db, job.id) == [(3, "retrying")]


async def test_release_hands_jobs_back_without_using_an_attempt(
    db: Database, store: JobStore
) -> None:
    mine = await _running(db, attempts=2)
    theirs = await _running(db, OTHER)

    await store.release(WORKER, [mine.id, theirs.id])

    stored = await fetch_job(db, mine.id)
    assert stored.status == JobStatus.PENDING
    assert stored.attempts == 1
    assert stored.worker_id is None
    assert stored.lease_expires_at is None
    assert await events_of(db, mine.id) == [(3, "released")]
    untouched = await fetch_job(db, theirs.id)
    assert (untouched.status, untouched.worker_id, untouched.attempts) == (
        JobStatus.RUNNING,
        OTHER,
        1,
    )


async def test_recover_lost_requeues_expired_leases_and_jobs_of_dead_workers(
    db: Database, store: JobStore
) -> None:
    dead = "host-c:300:cccccc"
    expired = await _running(db, OTHER, lease_expires_at=ago(1))
    of_dead_worker = await _running(db, dead)
    healthy = await _running(db, OTHER)
    done = await insert_job(db, status=JobStatus.COMPLETED, worker_id=dead, lease_expires_at=ago(5))

    await store.recover_lost()
    assert (await fetch_job(db, expired.id)).status == JobStatus.PENDING
    assert (await fetch_job(db, of_dead_worker.id)).status == JobStatus.RUNNING

    await store.recover_lost([dead])

    for job in (expired, of_dead_worker):
        stored = await fetch_job(db, job.id)
        assert (stored.status, stored.attempts, stored.worker_losses) == (JobStatus.PENDING, 0, 1)
        assert stored.error is not None
        assert stored.error["type"] == "WorkerLost"
        assert await events_of(db, job.id) == [(3, "requeued")]
    assert (await fetch_job(db, healthy.id)).status == JobStatus.RUNNING
    assert (await fetch_job(db, done.id)).status == JobStatus.COMPLETED


async def test_recover_lost_fails_a_job_past_its_worker_losses(
    db: Database, store: JobStore
) -> None:
    job = await _running(db, lease_expires_at=ago(1), worker_losses=2, max_worker_losses=2)

    await store.recover_lost()

    stored = await fetch_job(db, job.id)
    assert (stored.status, stored.worker_losses) == (JobStatus.FAILED, 3)
    assert stored.error is not None
    assert stored.error["type"] == "WorkerLost"
    async with db.session() as session:
        artifact = await session.get(Artifact, stored.result_artifact_id)
    assert artifact is not None
    assert artifact.data["error"]["type"] == "WorkerLost"
    assert set(artifact.data["error"]) == {"type", "message", "traceback"}
    assert await events_of(db, job.id) == [(3, "failed")]


async def test_cancel_a_pending_job_at_once(db: Database, store: JobStore) -> None:
    job = await insert_job(db, event_seq=1)

    canceled = await store.cancel(job.id)

    assert canceled.status == JobStatus.CANCELED
    stored = await fetch_job(db, job.id)
    assert stored.status == JobStatus.CANCELED
    assert stored.cancel_requested_at is not None
    assert stored.finished_at is not None
    assert await events_of(db, job.id) == [(2, "canceled")]
    with pytest.raises(ConflictError):
        await store.cancel(job.id)
    with pytest.raises(NotFoundError):
        await store.cancel(new_id())


async def test_cancel_a_running_job_asks_its_worker(db: Database, store: JobStore) -> None:
    job = await _running(db)

    canceling = await store.cancel(job.id)

    assert canceling.status == JobStatus.CANCELING
    assert await events_of(db, job.id) == [(3, "cancel_requested")]


@pytest.mark.parametrize(
    ("status", "deleted"),
    [
        (JobStatus.COMPLETED, True),
        (JobStatus.FAILED, True),
        (JobStatus.CANCELED, True),
        (JobStatus.PENDING, False),
        (JobStatus.RUNNING, False),
    ],
)
async def test_delete_removes_only_terminal_jobs(
    db: Database, store: JobStore, status: JobStatus, deleted: bool
) -> None:
    job = await insert_job(db, status=status)

    if deleted:
        await store.delete(job.id)
    else:
        with pytest.raises(ConflictError):
            await store.delete(job.id)

    assert await count_jobs(db, Job.id == job.id) == (0 if deleted else 1)


async def test_delete_cascades_to_the_jobs_artifacts(db: Database, store: JobStore) -> None:
    job = await insert_job(db, status=JobStatus.COMPLETED)
    kept = await insert_job(db, status=JobStatus.COMPLETED)
    async with db.transaction() as session:
        session.add(Artifact(id=new_id(), job_id=job.id, data={"x": 1}, created_at=utcnow()))
        session.add(Artifact(id=new_id(), job_id=kept.id, data={"x": 2}, created_at=utcnow()))

    await store.delete(job.id)
    with pytest.raises(NotFoundError):
        await store.delete(job.id)

    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Artifact).where(Artifact.job_id == job.id)
        )
        kept_count = await session.scalar(
            select(func.count()).select_from(Artifact).where(Artifact.job_id == kept.id)
        )
    assert count == 0
    assert kept_count == 1


async def test_append_sets_progress_only_while_running(db: Database, store: JobStore) -> None:
    running = await _running(db)
    done = await insert_job(db, status=JobStatus.COMPLETED, event_seq=3)

    await store.append(
        running.id, [("progress", {"fraction": 0.25})], ProgressUpdate(0.25, "a quarter")
    )
    await store.append(done.id, [], ProgressUpdate(0.5, "late"))

    stored = await fetch_job(db, running.id)
    assert (stored.progress, stored.progress_message) == (0.25, "a quarter")
    assert await events_of(db, running.id) == [(3, "progress")]
    stored_done = await fetch_job(db, done.id)
    assert (stored_done.progress, stored_done.progress_message) == (None, None)


async def test_delete_finished_before_keeps_recent_and_unfinished_jobs(
    db: Database, store: JobStore
) -> None:
    old = await insert_job(db, status=JobStatus.COMPLETED, finished_at=ago(3600))
    old_failed = await insert_job(db, status=JobStatus.FAILED, finished_at=ago(7200))
    recent = await insert_job(db, status=JobStatus.COMPLETED, finished_at=ago(1))
    pending = await insert_job(db, created_at=ago(9000))
    async with db.transaction() as session:
        session.add(Artifact(id=new_id(), job_id=old.id, data={}, created_at=ago(3600)))

    first_batch = await store.delete_finished_before(ago(60), limit=1)
    second_batch = await store.delete_finished_before(ago(60), limit=10)

    assert (first_batch, second_batch) == (1, 1)
    # Oldest first: the first batch of one took the job that ended earliest.
    assert await count_jobs(db, Job.id.in_([old.id, old_failed.id])) == 0
    assert await count_jobs(db, Job.id.in_([recent.id, pending.id])) == 2
    async with db.session() as session:
        artifacts = await session.scalar(select(func.count()).select_from(Artifact))
    assert artifacts == 0
