"""JobRepository: the queue's SQL, on SQLite and PostgreSQL."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs.models import Job, JobStatus
from app.jobs.repository import JobRepository
from tests.jobs.helpers import ago, count_jobs, fetch_job, insert_job, later

WORKER = "host-a:100:aaaaaa"
OTHER = "host-b:200:bbbbbb"


@pytest.fixture
def db(database: Database) -> Database:
    """The migrated database of the backend under test (SQLite, then PostgreSQL)."""
    return database


async def claim(db: Database, *, worker_id: str = WORKER, limit: int = 10) -> list[Job]:
    now = utcnow()
    async with db.transaction() as session:
        return await JobRepository(session).claim(
            worker_id=worker_id, limit=limit, now=now, lease_until=now + timedelta(seconds=30)
        )


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


async def test_claim_marks_the_job_running_for_the_worker(db: Database) -> None:
    job = await insert_job(db, attempts=1, max_attempts=3)
    now = utcnow()
    lease_until = now + timedelta(seconds=42)

    async with db.transaction() as session:
        claimed = await JobRepository(session).claim(
            worker_id=WORKER, limit=1, now=now, lease_until=lease_until
        )

    assert [c.id for c in claimed] == [job.id]
    stored = await fetch_job(db, job.id)
    assert stored.status == JobStatus.RUNNING
    assert stored.worker_id == WORKER
    assert stored.lease_expires_at == lease_until
    assert stored.started_at == now
    assert stored.attempts == 2
    assert claimed[0].attempts == 2
    assert claimed[0].worker_id == WORKER


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


async def test_renew_leases_returns_held_and_cancel_requested_ids(db: Database) -> None:
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
    lease_until = later(60)

    async with db.transaction() as session:
        still_held, canceled = await JobRepository(session).renew_leases(
            worker_id=WORKER,
            job_ids=[held.id, to_cancel.id, taken.id, finished.id],
            lease_until=lease_until,
        )

    assert still_held == {held.id, to_cancel.id}
    assert canceled == {to_cancel.id}
    assert (await fetch_job(db, held.id)).lease_expires_at == lease_until
    assert (await fetch_job(db, to_cancel.id)).lease_expires_at == lease_until
    assert (await fetch_job(db, taken.id)).lease_expires_at == taken.lease_expires_at


async def test_renew_leases_of_nothing(db: Database) -> None:
    async with db.transaction() as session:
        result = await JobRepository(session).renew_leases(
            worker_id=WORKER, job_ids=[], lease_until=later(30)
        )
    assert result == (set(), set())


async def test_held_by_lists_only_jobs_the_worker_still_holds(db: Database) -> None:
    mine = await insert_job(db, status=JobStatus.RUNNING, worker_id=WORKER)
    canceling = await insert_job(db, status=JobStatus.CANCELING, worker_id=WORKER)
    theirs = await insert_job(db, status=JobStatus.RUNNING, worker_id=OTHER)
    finished = await insert_job(db, status=JobStatus.COMPLETED, worker_id=WORKER)
    requeued = await insert_job(db, status=JobStatus.PENDING, worker_id=None)

    async with db.transaction() as session:
        held = await JobRepository(session).held_by(
            WORKER, [mine.id, canceling.id, theirs.id, finished.id, requeued.id]
        )
        nothing = await JobRepository(session).held_by(WORKER, [])

    assert set(held) == {mine.id, canceling.id}
    assert not nothing


async def test_finish_many_records_each_jobs_end(db: Database) -> None:
    ok = await insert_job(
        db, status=JobStatus.RUNNING, worker_id=WORKER, attempts=1, lease_expires_at=later(30)
    )
    bad = await insert_job(
        db, status=JobStatus.RUNNING, worker_id=WORKER, attempts=1, lease_expires_at=later(30)
    )
    untouched = await insert_job(db, status=JobStatus.RUNNING, worker_id=OTHER, attempts=1)
    now = utcnow()
    ok_artifact, bad_artifact = new_id(), new_id()

    async with db.transaction() as session:
        await JobRepository(session).finish_many(
            [
                {
                    "id": ok.id,
                    "status": JobStatus.COMPLETED.value,
                    "error": None,
                    "artifact_id": ok_artifact,
                    "now": now,
                    "seq": 1,
                },
                {
                    "id": bad.id,
                    "status": JobStatus.FAILED.value,
                    "error": {"type": "ValueError", "message": "boom"},
                    "artifact_id": bad_artifact,
                    "now": now,
                    "seq": 1,
                },
            ]
        )
        await JobRepository(session).finish_many([])

    stored_ok = await fetch_job(db, ok.id)
    assert (stored_ok.status, stored_ok.finished_at) == (JobStatus.COMPLETED, now)
    assert stored_ok.error is None
    assert stored_ok.result_artifact_id == ok_artifact
    assert stored_ok.lease_expires_at is None
    stored_bad = await fetch_job(db, bad.id)
    assert stored_bad.status == JobStatus.FAILED
    assert stored_bad.error == {"type": "ValueError", "message": "boom"}
    assert stored_bad.result_artifact_id == bad_artifact
    assert (await fetch_job(db, untouched.id)).status == JobStatus.RUNNING


async def test_retry_many_requeues_with_the_error(db: Database) -> None:
    job = await insert_job(
        db, status=JobStatus.RUNNING, worker_id=WORKER, attempts=1, lease_expires_at=later(30)
    )
    run_at = later(5)

    async with db.transaction() as session:
        await JobRepository(session).retry_many(
            [{"id": job.id, "run_at": run_at, "error": {"type": "E", "message": "m"}, "seq": 1}]
        )

    stored = await fetch_job(db, job.id)
    assert (stored.status, stored.run_at, stored.attempts) == (JobStatus.PENDING, run_at, 1)
    assert stored.error == {"type": "E", "message": "m"}
    assert stored.worker_id is None
    assert stored.lease_expires_at is None


async def test_release_hands_jobs_back_without_burning_an_attempt(db: Database) -> None:
    mine = await insert_job(
        db, status=JobStatus.RUNNING, worker_id=WORKER, attempts=2, lease_expires_at=later(30)
    )
    theirs = await insert_job(
        db, status=JobStatus.RUNNING, worker_id=OTHER, attempts=1, lease_expires_at=later(30)
    )
    now = utcnow()

    async with db.transaction() as session:
        released = await JobRepository(session).release(
            worker_id=WORKER, job_ids=[mine.id, theirs.id], now=now
        )

    assert released == 1
    stored = await fetch_job(db, mine.id)
    assert stored.status == JobStatus.PENDING
    assert stored.attempts == 1
    assert stored.worker_id is None
    assert stored.lease_expires_at is None
    assert stored.run_at == now
    untouched = await fetch_job(db, theirs.id)
    assert (untouched.status, untouched.worker_id, untouched.attempts) == (
        JobStatus.RUNNING,
        OTHER,
        1,
    )


async def test_lost_finds_expired_leases_and_jobs_of_dead_workers(db: Database) -> None:
    dead = "host-c:300:cccccc"
    expired = await insert_job(
        db, status=JobStatus.RUNNING, worker_id=OTHER, lease_expires_at=ago(1)
    )
    of_dead_worker = await insert_job(
        db, status=JobStatus.RUNNING, worker_id=dead, lease_expires_at=later(30)
    )
    healthy = await insert_job(
        db, status=JobStatus.RUNNING, worker_id=OTHER, lease_expires_at=later(30)
    )
    await insert_job(db, status=JobStatus.COMPLETED, worker_id=dead, lease_expires_at=ago(5))
    await insert_job(db, status=JobStatus.PENDING)

    async with db.transaction() as session:
        by_lease = await JobRepository(session).lost(now=utcnow())
    async with db.transaction() as session:
        with_dead = await JobRepository(session).lost(now=utcnow(), worker_ids=[dead])

    assert [job.id for job in by_lease] == [expired.id]
    assert sorted(job.id for job in with_dead) == sorted([expired.id, of_dead_worker.id])
    assert healthy.id not in {job.id for job in with_dead}


async def test_running_worker_ids(db: Database) -> None:
    await insert_job(db, status=JobStatus.RUNNING, worker_id=WORKER)
    await insert_job(db, status=JobStatus.RUNNING, worker_id=WORKER)
    await insert_job(db, status=JobStatus.RUNNING, worker_id=OTHER)
    await insert_job(db, status=JobStatus.COMPLETED, worker_id="host:1:gone")

    async with db.session() as session:
        ids = await JobRepository(session).running_worker_ids()

    assert sorted(ids) == sorted([WORKER, OTHER])


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
    db: Database, status: JobStatus, deleted: bool
) -> None:
    job = await insert_job(db, status=status)

    async with db.transaction() as session:
        count = await JobRepository(session).delete(job.id)

    assert count == (1 if deleted else 0)
    assert await count_jobs(db, Job.id == job.id) == (0 if deleted else 1)


async def test_delete_cascades_to_the_jobs_artifacts(db: Database) -> None:
    job = await insert_job(db, status=JobStatus.COMPLETED)
    kept = await insert_job(db, status=JobStatus.COMPLETED)
    async with db.transaction() as session:
        session.add(Artifact(id=new_id(), job_id=job.id, data={"x": 1}, created_at=utcnow()))
        session.add(Artifact(id=new_id(), job_id=kept.id, data={"x": 2}, created_at=utcnow()))

    async with db.transaction() as session:
        assert await JobRepository(session).delete(job.id) == 1

    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Artifact).where(Artifact.job_id == job.id)
        )
        kept_count = await session.scalar(
            select(func.count()).select_from(Artifact).where(Artifact.job_id == kept.id)
        )
    assert count == 0
    assert kept_count == 1


async def test_set_progress_only_while_running(db: Database) -> None:
    running = await insert_job(db, status=JobStatus.RUNNING, worker_id=WORKER)
    done = await insert_job(db, status=JobStatus.COMPLETED)

    async with db.transaction() as session:
        repo = JobRepository(session)
        await repo.set_progress(running.id, 0.25, "a quarter")
        await repo.set_progress(done.id, 0.5, "late")

    stored = await fetch_job(db, running.id)
    assert (stored.progress, stored.progress_message) == (0.25, "a quarter")
    stored_done = await fetch_job(db, done.id)
    assert (stored_done.progress, stored_done.progress_message) == (None, None)


async def test_list_page_newest_first_with_filters(db: Database) -> None:
    a = await insert_job(db, task_name="alpha")
    b = await insert_job(db, task_name="beta", status=JobStatus.COMPLETED)
    c = await insert_job(db, task_name="alpha", status=JobStatus.COMPLETED)

    async with db.session() as session:
        repo = JobRepository(session)
        everything, total = await repo.list_page(status=None, task_name=None, limit=10, offset=0)
        page, page_total = await repo.list_page(status=None, task_name=None, limit=1, offset=1)
        alpha, alpha_total = await repo.list_page(
            status=None, task_name="alpha", limit=10, offset=0
        )
        done_alpha, done_alpha_total = await repo.list_page(
            status=JobStatus.COMPLETED, task_name="alpha", limit=10, offset=0
        )

    assert [job.id for job in everything] == [c.id, b.id, a.id]
    assert total == 3
    assert [job.id for job in page] == [b.id]
    assert page_total == 3
    assert [job.id for job in alpha] == [c.id, a.id]
    assert alpha_total == 2
    assert [job.id for job in done_alpha] == [c.id]
    assert done_alpha_total == 1


async def test_pending_candidates_then_claim_ids(db: Database) -> None:
    first = await insert_job(db, task_name="a", priority=1)
    second = await insert_job(db, task_name="b")
    await insert_job(db, task_name="c", run_at=later(3600))
    await insert_job(db, task_name="d", status=JobStatus.RUNNING, worker_id=OTHER)

    now = utcnow()
    async with db.transaction() as session:
        repo = JobRepository(session)
        candidates = await repo.pending_candidates(now=now, limit=10, exclude_tasks=())
        claimed = await repo.claim_ids(
            worker_id=WORKER,
            job_ids=[second.id, first.id],
            now=now,
            lease_until=now + timedelta(seconds=30),
        )
        again = await repo.claim_ids(
            worker_id=OTHER, job_ids=[first.id], now=now, lease_until=now + timedelta(seconds=30)
        )

    assert candidates == [(first.id, "a"), (second.id, "b")]
    assert [job.id for job in claimed] == [first.id, second.id]
    assert again == [], "a claimed job was claimed again"
    stored = await fetch_job(db, first.id)
    assert (stored.status, stored.worker_id, stored.attempts) == (JobStatus.RUNNING, WORKER, 1)


async def test_active_counts_per_task(db: Database) -> None:
    await insert_job(db, task_name="a", status=JobStatus.RUNNING, worker_id=WORKER)
    await insert_job(db, task_name="a", status=JobStatus.CANCELING, worker_id=OTHER)
    await insert_job(db, task_name="b", status=JobStatus.RUNNING, worker_id=OTHER)
    await insert_job(db, task_name="b", status=JobStatus.PENDING)
    await insert_job(db, task_name="c", status=JobStatus.COMPLETED)

    async with db.session() as session:
        counts = await JobRepository(session).active_counts()

    assert counts == {"a": 2, "b": 1}


async def test_delete_finished_before_keeps_recent_and_unfinished_jobs(db: Database) -> None:
    old = await insert_job(db, status=JobStatus.COMPLETED, finished_at=ago(3600))
    old_failed = await insert_job(db, status=JobStatus.FAILED, finished_at=ago(7200))
    recent = await insert_job(db, status=JobStatus.COMPLETED, finished_at=ago(1))
    pending = await insert_job(db, created_at=ago(9000))
    async with db.transaction() as session:
        session.add(Artifact(id=new_id(), job_id=old.id, data={}, created_at=ago(3600)))

    async with db.transaction() as session:
        first_batch = await JobRepository(session).delete_finished_before(ago(60), limit=1)
    async with db.transaction() as session:
        second_batch = await JobRepository(session).delete_finished_before(ago(60), limit=10)

    assert (first_batch, second_batch) == (1, 1)
    # Oldest first: the first batch of one took the job that ended earliest.
    assert await count_jobs(db, Job.id.in_([old.id, old_failed.id])) == 0
    assert await count_jobs(db, Job.id.in_([recent.id, pending.id])) == 2
    async with db.session() as session:
        artifacts = await session.scalar(select(func.count()).select_from(Artifact))
    assert artifacts == 0
