"""JobScheduler: submit (validated), get, cancel, delete, wait."""

import asyncio
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.manager import ArtifactManager
from app.artifacts.models import Artifact
from app.core.clock import utcnow
from app.core.errors import ConflictError, NotFoundError, ValidationFailedError
from app.core.metrics import Metrics
from app.db.database import Database
from app.jobs.events import EventBus
from app.jobs.injectables import Injectables
from app.jobs.models import Job, JobStatus
from app.jobs.scheduler import JobScheduler
from app.jobs.store import AfterCommit, JobStore
from app.jobs.worker import Worker, WorkerConfig
from app.tasks.registry import TaskRegistry
from tests.jobs.helpers import (
    artifacts_of,
    count_jobs,
    fetch_job,
    insert_job,
    running_worker,
    wait_for_terminal,
)


@pytest.fixture
def scheduler(database: Database) -> JobScheduler:
    """A scheduler with no worker: jobs stay where the test puts them."""
    return JobScheduler(database, max_concurrency=2)


def register_greet(registry: type[TaskRegistry], **options: Any) -> None:
    async def greet(name: str, times: int = 1) -> str:
        return " ".join([f"hello {name}"] * times)

    registry.register_function("greet", greet, **options)


async def test_submit_queues_a_pending_job(
    scheduler: JobScheduler, database: Database, registry: type[TaskRegistry]
) -> None:
    register_greet(registry, retries=2, priority=7)
    before = utcnow()

    job = await scheduler.submit("greet", {"name": "Ada"})

    assert job.status == JobStatus.PENDING
    assert job.task_name == "greet"
    assert job.params == {"name": "Ada"}
    assert (job.priority, job.max_attempts, job.attempts) == (7, 3, 0)
    assert job.result is None
    stored = await fetch_job(database, job.id)
    assert stored.status == JobStatus.PENDING
    assert stored.params == {"name": "Ada"}
    assert (stored.priority, stored.max_attempts, stored.attempts) == (7, 3, 0)
    assert stored.created_at >= before
    assert stored.run_at == stored.created_at


async def test_submit_with_a_delay_runs_later(
    scheduler: JobScheduler, database: Database, registry: type[TaskRegistry]
) -> None:
    register_greet(registry)

    job = await scheduler.submit("greet", {"name": "Ada"}, delay=60)

    stored = await fetch_job(database, job.id)
    assert stored.run_at - stored.created_at == timedelta(seconds=60)


async def test_submit_unknown_task_is_not_found_and_inserts_nothing(
    scheduler: JobScheduler, database: Database
) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        await scheduler.submit("nope", {})

    assert await count_jobs(database) == 0


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({}, id="missing"),
        pytest.param({"name": "Ada", "extra": 1}, id="unknown"),
        pytest.param({"name": 5}, id="wrong-type"),
        pytest.param({"name": "Ada", "times": "2"}, id="string-for-int"),
    ],
)
async def test_submit_bad_params_fail_validation_and_insert_nothing(
    scheduler: JobScheduler,
    database: Database,
    registry: type[TaskRegistry],
    params: dict[str, object],
) -> None:
    register_greet(registry)

    with pytest.raises(ValidationFailedError) as caught:
        await scheduler.submit("greet", params)

    assert caught.value.errors
    assert all(entry["loc"][0] == "params" for entry in caught.value.errors)
    assert await count_jobs(database) == 0


async def test_get_reads_a_job_and_rejects_unknown_ids(
    scheduler: JobScheduler, registry: type[TaskRegistry]
) -> None:
    register_greet(registry)
    job = await scheduler.submit("greet", {"name": "Ada"})

    assert (await scheduler.get(job.id)).id == job.id
    with pytest.raises(NotFoundError):
        await scheduler.get("01ARZ3NDEKTSV4RRFFQ69G5FAV")


async def test_cancel_pending_job(
    scheduler: JobScheduler, database: Database, registry: type[TaskRegistry]
) -> None:
    register_greet(registry)
    job = await scheduler.submit("greet", {"name": "Ada"})

    canceled = await scheduler.cancel(job.id)

    assert canceled.status == JobStatus.CANCELED
    assert canceled.cancel_requested is True
    stored = await fetch_job(database, job.id)
    assert stored.status == JobStatus.CANCELED
    assert stored.finished_at is not None
    assert stored.cancel_requested_at is not None
    assert stored.error is not None
    assert stored.error["type"] == "JobCancelledError"


async def test_cancel_running_job_records_the_request(
    scheduler: JobScheduler, database: Database
) -> None:
    job = await insert_job(database, status=JobStatus.RUNNING, worker_id="elsewhere:1:abcdef")

    requested = await scheduler.cancel(job.id)

    # The worker that runs it learns about it from the row; until it stops, it is not over.
    assert requested.status == JobStatus.CANCELING
    assert requested.cancel_requested is True
    assert requested.finished_at is None
    stored = await fetch_job(database, job.id)
    assert stored.status == requested.status
    assert stored.cancel_requested_at is not None


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED])
async def test_cancel_finished_job_conflicts(
    scheduler: JobScheduler, database: Database, status: JobStatus
) -> None:
    job = await insert_job(database, status=status, finished_at=utcnow())

    with pytest.raises(ConflictError):
        await scheduler.cancel(job.id)

    stored = await fetch_job(database, job.id)
    assert stored.status == status
    assert stored.cancel_requested_at is None


async def test_cancel_unknown_job_is_not_found(scheduler: JobScheduler) -> None:
    with pytest.raises(NotFoundError):
        await scheduler.cancel("01ARZ3NDEKTSV4RRFFQ69G5FAV")


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RUNNING])
async def test_delete_unfinished_job_conflicts(
    scheduler: JobScheduler, database: Database, status: JobStatus
) -> None:
    job = await insert_job(database, status=status)

    with pytest.raises(ConflictError):
        await scheduler.delete(job.id)

    assert await count_jobs(database) == 1


async def test_delete_unknown_job_is_not_found(scheduler: JobScheduler) -> None:
    with pytest.raises(NotFoundError):
        await scheduler.delete("01ARZ3NDEKTSV4RRFFQ69G5FAV")


async def test_delete_finished_job_removes_its_artifacts(
    database: Database, registry: type[TaskRegistry]
) -> None:
    register_greet(registry)

    async with running_worker(database) as (_, scheduler):
        doomed = await scheduler.submit("greet", {"name": "Ada"})
        kept = await scheduler.submit("greet", {"name": "Bob"})
        assert (await scheduler.wait(doomed.id, 15)).status == JobStatus.COMPLETED
        assert (await scheduler.wait(kept.id, 15)).status == JobStatus.COMPLETED
        # A second artifact the run saved for the same job goes too.
        await ArtifactManager(database).save({"extra": True}, job_id=doomed.id)
        assert len(await artifacts_of(database, doomed.id)) == 2

        await scheduler.delete(doomed.id)

        with pytest.raises(NotFoundError):
            await scheduler.get(doomed.id)

    assert await artifacts_of(database, doomed.id) == []
    assert len(await artifacts_of(database, kept.id)) == 1
    async with database.session() as session:
        total = await session.scalar(select(func.count()).select_from(Artifact))
    assert total == 1


async def test_wait_returns_once_the_job_is_terminal(
    database: Database, registry: type[TaskRegistry]
) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def gated() -> str:
        started.set()
        await asyncio.wait_for(gate.wait(), 10)
        return "opened"

    registry.register_function("gated", gated)

    try:
        async with running_worker(database) as (_, scheduler):
            job = await scheduler.submit("gated")
            waiting = asyncio.create_task(scheduler.wait(job.id, 15))
            await asyncio.wait_for(started.wait(), 10)
            assert (await fetch_job(database, job.id)).status == JobStatus.RUNNING
            assert not waiting.done(), "wait() returned while the job was still running"
            gate.set()
            finished = await asyncio.wait_for(waiting, 15)
    finally:
        gate.set()

    assert finished.status == JobStatus.COMPLETED
    assert finished.result is not None


async def test_wait_gives_up_with_the_latest_state(
    scheduler: JobScheduler, registry: type[TaskRegistry]
) -> None:
    register_greet(registry)
    job = await scheduler.submit("greet", {"name": "Ada"})

    latest = await scheduler.wait(job.id, 0.05)

    assert latest.status == JobStatus.PENDING


async def test_submit_wakes_the_attached_worker(
    database: Database, registry: type[TaskRegistry]
) -> None:
    register_greet(registry)

    # A long poll interval: only the scheduler's notification can make this prompt.
    async with running_worker(database, poll_interval=60.0, lease_seconds=600.0) as (
        _,
        scheduler,
    ):
        job = await scheduler.submit("greet", {"name": "Ada"})
        finished = await scheduler.wait(job.id, 5)

    assert finished.status == JobStatus.COMPLETED


class RecordingBus(EventBus):
    """The real bus, also remembering which job ids were published."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[str] = []

    def publish(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        self.published += ids
        super().publish(ids)


async def test_a_job_queued_by_a_task_that_then_fails_leaves_no_trace(
    database: Database, registry: type[TaskRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.jobs.store")
    children: dict[str, str] = {}

    async def child() -> str:
        return "child"

    async def parent(session: AsyncSession, queue: JobScheduler, fail: bool) -> None:
        # Queued inside the task's session: part of its transaction.
        children["failing" if fail else "ok"] = (await queue.submit("child")).id
        if fail:
            raise RuntimeError("failed after queueing a job")

    registry.register_function("child", child)
    registry.register_function("parent", parent)
    bus, metrics = RecordingBus(), Metrics()
    store = JobStore(database, AfterCommit(bus, metrics))
    scheduler = JobScheduler(database, max_concurrency=2, store=store)
    injectables = Injectables(database, ArtifactManager(database), scheduler)
    worker = Worker(database, WorkerConfig(concurrency=2), injectables=injectables, store=store)
    await worker.start()
    try:
        failed = await scheduler.submit("parent", {"fail": True})
        assert (await wait_for_terminal(database, failed.id)).status == JobStatus.FAILED
        passed = await scheduler.submit("parent", {"fail": False})
        assert (await wait_for_terminal(database, passed.id)).status == JobStatus.COMPLETED
        committed = await wait_for_terminal(database, children["ok"])
    finally:
        await worker.stop()

    rolled_back = children["failing"]
    assert await count_jobs(database, Job.id == rolled_back) == 0
    assert committed.status == JobStatus.COMPLETED
    # Only the committed child was published, counted and logged as queued.
    assert rolled_back not in bus.published
    assert children["ok"] in bus.published
    submitted = metrics.registry.get_sample_value(
        "taskexec_jobs_submitted_total", {"task": "child"}
    )
    assert submitted == 1
    queued = [r for r in caplog.records if r.getMessage() == "job queued"]
    assert rolled_back not in {getattr(r, "job_id", None) for r in queued}
    assert children["ok"] in {getattr(r, "job_id", None) for r in queued}
