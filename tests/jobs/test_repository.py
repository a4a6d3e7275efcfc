"""JobRepository: the job reads, on SQLite and PostgreSQL (changes are tests/jobs/test_store.py)."""

import pytest

from app.core.clock import utcnow
from app.db.database import Database
from app.jobs.models import JobStatus
from app.jobs.repository import JobRepository
from tests.jobs.helpers import insert_job, later

WORKER = "host-a:100:aaaaaa"
OTHER = "host-b:200:bbbbbb"


@pytest.fixture
def db(database: Database) -> Database:
    """The migrated database of the backend under test (SQLite, then PostgreSQL)."""
    return database


async def test_running_worker_ids(db: Database) -> None:
    await insert_job(db, status=JobStatus.RUNNING, worker_id=WORKER)
    await insert_job(db, status=JobStatus.RUNNING, worker_id=WORKER)
    await insert_job(db, status=JobStatus.RUNNING, worker_id=OTHER)
    await insert_job(db, status=JobStatus.COMPLETED, worker_id="host:1:gone")

    async with db.session() as session:
        ids = await JobRepository(session).running_worker_ids()

    assert sorted(ids) == sorted([WORKER, OTHER])


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


async def test_active_counts_per_task(db: Database) -> None:
    await insert_job(db, task_name="a", status=JobStatus.RUNNING, worker_id=WORKER)
    await insert_job(db, task_name="a", status=JobStatus.CANCELING, worker_id=OTHER)
    await insert_job(db, task_name="b", status=JobStatus.RUNNING, worker_id=OTHER)
    await insert_job(db, task_name="b", status=JobStatus.PENDING)
    await insert_job(db, task_name="c", status=JobStatus.COMPLETED)

    async with db.session() as session:
        counts = await JobRepository(session).active_counts()

    assert counts == {"a": 2, "b": 1}


async def test_pending_candidates_in_claim_order(db: Database) -> None:
    first = await insert_job(db, task_name="a", priority=1)
    second = await insert_job(db, task_name="b")
    await insert_job(db, task_name="c", run_at=later(3600))
    await insert_job(db, task_name="d", status=JobStatus.RUNNING, worker_id=OTHER)
    third = await insert_job(db, task_name="e")

    async with db.session() as session:
        repo = JobRepository(session)
        candidates = await repo.pending_candidates(now=utcnow(), limit=10, exclude_tasks=())
        without_e = await repo.pending_candidates(now=utcnow(), limit=10, exclude_tasks=["e"])

    assert candidates == [(first.id, "a"), (second.id, "b"), (third.id, "e")]
    assert without_e == [(first.id, "a"), (second.id, "b")]
