"""The request path's submissions: rows without ORM objects, receipts, keys read in one go."""

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from app.core.errors import ConflictError
from app.db.database import Database
from app.jobs.models import Job, JobEvent, JobStatus
from app.jobs.scheduler import JobScheduler, Receipt
from app.jobs.store import JobStore
from app.jobs.store.queueing import new_job_row
from app.jobs.submissions import request_hash
from app.tasks.registry import TaskRegistry
from tests.jobs.helpers import count_jobs, fetch_job, make_job


@pytest.fixture
def scheduler(database: Database, registry: type[TaskRegistry]) -> JobScheduler:
    async def double(x: int) -> int:
        return 2 * x

    registry.register_function("double", double, retries=2, timeout=30.0)
    return JobScheduler(database, max_concurrency=2)


async def created_events(database: Database, job_id: str) -> list[tuple[int, str]]:
    async with database.session() as session:
        rows = await session.execute(
            select(JobEvent.seq, JobEvent.type).where(JobEvent.job_id == job_id)
        )
    return [(seq, type_) for seq, type_ in rows]


async def test_accept_queues_the_job_and_answers_a_receipt(
    scheduler: JobScheduler, database: Database
) -> None:
    receipt = await scheduler.accept("double", {"x": 2}, request_id="req-1")

    assert receipt == Receipt(receipt.job_id, True, None, None)
    stored = await fetch_job(database, receipt.job_id)
    assert stored.status == JobStatus.PENDING
    assert (stored.params, stored.max_attempts, stored.timeout_seconds) == ({"x": 2}, 3, 30.0)
    assert (stored.request_id, stored.event_seq, stored.worker_losses) == ("req-1", 1, 0)
    assert stored.run_at == stored.created_at
    assert (stored.parent_id, stored.started_at, stored.error) == (None, None, None)
    # No key to guard, no fingerprint stored.
    assert stored.request_hash is None
    assert await created_events(database, receipt.job_id) == [(1, "created")]


async def test_a_key_repeated_with_the_same_params_answers_the_first_job(
    scheduler: JobScheduler, database: Database
) -> None:
    first = await scheduler.accept("double", {"x": 2}, idempotency_key="k")
    again = await scheduler.accept("double", {"x": 2}, idempotency_key="k")

    assert first.created
    assert again == Receipt(first.job_id, False, "k", None)
    stored = await fetch_job(database, first.job_id)
    assert stored.request_hash == request_hash("double", {"x": 2})
    with pytest.raises(ConflictError):
        await scheduler.accept("double", {"x": 3}, idempotency_key="k")
    assert await count_jobs(database) == 1


async def test_rows_and_job_objects_share_one_group_commit(database: Database) -> None:
    store = JobStore(database)
    job = make_job(task_name="double", params={"x": 1})
    row = new_job_row(
        id="01" + "A" * 24,
        task_name="double",
        params={"x": 2},
        run_at=job.run_at,
        created_at=job.created_at,
    )

    # Submitted together, written in one transaction: one insert per set of columns.
    await asyncio.gather(store.queue([job]), store.queue_rows([row]))

    for job_id in (job.id, row["id"]):
        assert (await fetch_job(database, job_id)).status == JobStatus.PENDING
        assert await created_events(database, job_id) == [(1, "created")]


def test_a_row_names_only_job_columns() -> None:
    with pytest.raises(KeyError, match="nope"):
        new_job_row(nope=1)


async def test_a_batch_finds_hundreds_of_existing_keys_in_item_order(
    scheduler: JobScheduler, database: Database
) -> None:
    items: list[tuple[dict[str, Any], Any]] = [
        ({"x": n}, {"idempotency_key": f"key-{n}"}) for n in range(600)
    ]
    first = await scheduler.enqueue_many("double", items)
    again = await scheduler.enqueue_many("double", [*items, ({"x": 1}, {})])

    assert again[:600] == first
    assert again[600] not in first
    assert await count_jobs(database) == 601
    assert await count_jobs(database, Job.request_hash.is_(None)) == 1
