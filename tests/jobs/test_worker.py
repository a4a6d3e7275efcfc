"""The worker: claiming, running, limits, results, retries, injection, cancellation, recovery."""

import asyncio
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.manager import ArtifactManager
from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs.context import JobContext
from app.jobs.injectables import Injectables
from app.jobs.models import Job, JobStatus
from app.jobs.scheduler import JobScheduler
from app.jobs.worker import Worker, WorkerConfig
from app.tasks.registry import Registry, TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import apoll_until
from tests.jobs.helpers import (
    ago,
    artifacts_of,
    count_jobs,
    exited_pid,
    fetch_job,
    insert_job,
    later,
    running_worker,
    wait_for_status,
    wait_for_terminal,
    worker_for,
)

BLOCK_SECONDS = 10.0


class Gauge:
    """Counts tasks running right now and remembers the peak; safe from threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0
        self.calls = 0

    def enter(self) -> None:
        with self._lock:
            self.current += 1
            self.calls += 1
            self.peak = max(self.peak, self.current)

    def exit(self) -> None:
        with self._lock:
            self.current -= 1


async def test_runs_async_and_sync_tasks(database: Database, registry: type[TaskRegistry]) -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    def multiply(a: int, b: int) -> dict[str, Any]:
        return {"product": a * b, "thread": threading.current_thread().name}

    registry.register_function("add", add)
    registry.register_function("multiply", multiply)

    async with running_worker(database) as (_, scheduler):
        added = await scheduler.submit("add", {"a": 2, "b": 3})
        multiplied = await scheduler.submit("multiply", {"a": 4, "b": 5})
        added_job = await wait_for_terminal(database, added.id)
        multiplied_job = await wait_for_terminal(database, multiplied.id)

    assert added_job.status == JobStatus.COMPLETED
    assert multiplied_job.status == JobStatus.COMPLETED
    [add_artifact] = await artifacts_of(database, added.id)
    [mul_artifact] = await artifacts_of(database, multiplied.id)
    assert add_artifact.data["result"] == 5
    assert mul_artifact.data["result"]["product"] == 20
    # Sync tasks run in the worker's threads, never on the loop's thread.
    assert mul_artifact.data["result"]["thread"].startswith("taskexec-sync")


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_global_concurrency_limit_holds(
    database: Database, registry: type[TaskRegistry], kind: str
) -> None:
    limit = 3
    gauge = Gauge()
    async_gate = asyncio.Event()
    thread_gate = threading.Event()

    async def wait_async() -> str:
        gauge.enter()
        try:
            await asyncio.wait_for(async_gate.wait(), BLOCK_SECONDS)
        finally:
            gauge.exit()
        return "done"

    def wait_sync() -> str:
        gauge.enter()
        try:
            thread_gate.wait(BLOCK_SECONDS)
        finally:
            gauge.exit()
        return "done"

    registry.register_function("gated", wait_async if kind == "async" else wait_sync)

    try:
        async with running_worker(database, concurrency=limit) as (_, scheduler):
            ids = [(await scheduler.submit("gated")).id for _ in range(3 * limit)]
            await apoll_until(lambda: gauge.current == limit, what=f"{limit} running tasks")
            assert await count_jobs(database, Job.status == JobStatus.RUNNING) == limit
            assert await count_jobs(database, Job.status == JobStatus.PENDING) == 2 * limit

            async_gate.set()
            thread_gate.set()

            async def all_completed() -> bool:
                return await count_jobs(database, Job.status == JobStatus.COMPLETED) == len(ids)

            await apoll_until(all_completed, what="every job to complete")
    finally:
        async_gate.set()
        thread_gate.set()

    assert gauge.peak == limit
    assert gauge.calls == 3 * limit


async def test_blocking_sync_task_does_not_block_the_loop(
    database: Database, registry: type[TaskRegistry]
) -> None:
    started = threading.Event()
    release = threading.Event()
    finished = threading.Event()

    def block() -> str:
        started.set()
        release.wait(BLOCK_SECONDS)
        finished.set()
        return "unblocked"

    registry.register_function("block", block)

    try:
        async with running_worker(database) as (_, scheduler):
            job = await scheduler.submit("block")
            await apoll_until(started.is_set, what="the sync task to start")

            async def probe() -> int:
                ticks = 0
                for _ in range(20):
                    await asyncio.sleep(0.001)
                    ticks += 1
                return ticks

            assert await asyncio.wait_for(probe(), timeout=5) == 20
            # The probe ran to completion while the thread was still blocked.
            assert not finished.is_set()
            assert (await fetch_job(database, job.id)).status == JobStatus.RUNNING

            release.set()
            done = await wait_for_terminal(database, job.id)
    finally:
        release.set()

    assert done.status == JobStatus.COMPLETED


async def test_http_is_served_while_a_sync_task_blocks_its_thread(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    started = threading.Event()
    release = threading.Event()

    def block() -> str:
        started.set()
        release.wait(BLOCK_SECONDS)
        return "unblocked"

    registry.register_function("block", block)

    try:
        async with client_factory(max_concurrency=2) as client:
            response = await client.post("/api/v1/tasks/block/$execute")
            assert response.status_code == 202
            job_id = response.json()["job_id"]
            await apoll_until(started.is_set, what="the sync task to start")

            health = await asyncio.wait_for(client.get("/health"), timeout=5)
            job = await asyncio.wait_for(client.get(f"/api/v1/jobs/{job_id}"), timeout=5)

            assert health.status_code == 200
            assert job.json()["status"] == "running"
            assert not release.is_set()
            release.set()

            async def completed() -> bool:
                current = await client.get(f"/api/v1/jobs/{job_id}")
                return bool(current.json()["status"] == "completed")

            await apoll_until(completed, what="the job to complete")
    finally:
        release.set()


async def test_task_that_raises_ends_failed_with_its_error(
    database: Database, registry: type[TaskRegistry]
) -> None:
    def explode(n: int) -> int:
        raise ValueError(f"bad input {n}")

    registry.register_function("explode", explode)

    async with running_worker(database) as (_, scheduler):
        job = await scheduler.submit("explode", {"n": 7})
        stored = await wait_for_terminal(database, job.id)

    assert stored.status == JobStatus.FAILED
    assert stored.error == {"type": "ValueError", "message": "bad input 7"}
    assert stored.finished_at is not None
    [artifact] = await artifacts_of(database, job.id)
    assert stored.result_artifact_id == artifact.id
    error = artifact.data["error"]
    assert set(error) == {"type", "message", "traceback"}
    assert error["type"] == "ValueError"
    assert error["message"] == "bad input 7"
    assert "ValueError: bad input 7" in error["traceback"]
    assert "in explode" in error["traceback"]
    assert artifact.data["result"] is None


@pytest.mark.parametrize(
    "make_result",
    [
        pytest.param(lambda: object(), id="object"),
        pytest.param(lambda: float("nan"), id="nan"),
        pytest.param(lambda: {"values": [1.0, math.inf]}, id="nested-inf"),
    ],
)
async def test_unserialisable_result_fails_the_job_clearly(
    database: Database, registry: type[TaskRegistry], make_result: Callable[[], Any]
) -> None:
    async def produce() -> Any:
        return make_result()

    registry.register_function("produce", produce)

    async with running_worker(database) as (_, scheduler):
        job = await scheduler.submit("produce")
        stored = await wait_for_terminal(database, job.id)

    assert stored.status == JobStatus.FAILED
    assert stored.error is not None
    assert stored.error["type"] == "ResultNotSerializableError"
    assert "cannot be stored as JSON" in stored.error["message"]
    [artifact] = await artifacts_of(database, job.id)
    assert artifact.data["result"] is None
    assert artifact.data["error"]["type"] == "ResultNotSerializableError"


async def test_artifact_records_exactly_the_run(
    database: Database, registry: type[TaskRegistry]
) -> None:
    async def greet(name: str, excited: bool = False) -> dict[str, Any]:
        return {"greeting": f"hello {name}" + ("!" if excited else ""), "pair": (1, 2)}

    registry.register_function("greet", greet)

    async with running_worker(database) as (_, scheduler):
        job = await scheduler.submit("greet", {"name": "Ada", "excited": True})
        read = await scheduler.wait(job.id, 15)

    assert read.status == JobStatus.COMPLETED
    artifacts = await artifacts_of(database, job.id)
    assert len(artifacts) == 1
    artifact = artifacts[0]
    assert read.result == artifact.id
    assert artifact.job_id == job.id
    assert artifact.data == {
        "task_name": "greet",
        "params": {"name": "Ada", "excited": True},
        "result": {"greeting": "hello Ada!", "pair": [1, 2]},
        "error": None,
    }
    assert read.error is None


async def test_retries_until_success(database: Database, registry: type[TaskRegistry]) -> None:
    calls: list[int] = []

    def flaky(ctx: JobContext) -> str:
        calls.append(ctx.attempt)
        if len(calls) < 3:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return "third time lucky"

    registry.register_function("flaky", flaky, retries=2, retry_backoff=0)

    async with running_worker(database) as (_, scheduler):
        job = await scheduler.submit("flaky")
        assert job.max_attempts == 3
        stored = await wait_for_status(database, job.id, JobStatus.COMPLETED, JobStatus.FAILED)

    assert stored.status == JobStatus.COMPLETED
    assert stored.attempts == 3
    assert calls == [1, 2, 3]
    assert stored.error is None
    [artifact] = await artifacts_of(database, job.id)
    assert artifact.data["result"] == "third time lucky"


async def test_retries_run_out(database: Database, registry: type[TaskRegistry]) -> None:
    calls: list[int] = []

    async def always_fails() -> None:
        calls.append(1)
        raise RuntimeError("still broken")

    registry.register_function("always_fails", always_fails, retries=1, retry_backoff=0)

    async with running_worker(database) as (_, scheduler):
        job = await scheduler.submit("always_fails")
        stored = await wait_for_status(database, job.id, JobStatus.COMPLETED, JobStatus.FAILED)

    assert stored.status == JobStatus.FAILED
    assert stored.attempts == 2
    assert len(calls) == 2
    assert stored.error == {"type": "RuntimeError", "message": "still broken"}
    assert len(await artifacts_of(database, job.id)) == 1


async def test_retry_on_limits_which_errors_retry(
    database: Database, registry: type[TaskRegistry]
) -> None:
    other_calls: list[int] = []
    listed_calls: list[int] = []

    def other_error() -> None:
        other_calls.append(1)
        raise ValueError("not retried")

    def listed_then_other() -> None:
        listed_calls.append(1)
        if len(listed_calls) == 1:
            raise KeyError("retried")
        raise ValueError("not retried")

    registry.register_function(
        "other_error", other_error, retries=3, retry_backoff=0, retry_on=KeyError
    )
    registry.register_function(
        "listed_then_other", listed_then_other, retries=3, retry_backoff=0, retry_on=(KeyError,)
    )

    async with running_worker(database) as (_, scheduler):
        other = await scheduler.submit("other_error")
        listed = await scheduler.submit("listed_then_other")
        other_job = await wait_for_terminal(database, other.id)
        listed_job = await wait_for_terminal(database, listed.id)

    assert (other_job.status, other_job.attempts, len(other_calls)) == (JobStatus.FAILED, 1, 1)
    assert (listed_job.status, listed_job.attempts, len(listed_calls)) == (
        JobStatus.FAILED,
        2,
        2,
    )
    assert listed_job.error == {"type": "ValueError", "message": "not retried"}


async def artifact_count(database: Database, artifact_id: str) -> int:
    async with database.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Artifact).where(Artifact.id == artifact_id)
        )
    return int(count or 0)


@pytest.mark.parametrize("fail", [False, True])
async def test_injected_session_commits_on_success_and_rolls_back_on_failure(
    database: Database, registry: type[TaskRegistry], fail: bool
) -> None:
    row_id = new_id()

    async def write(fail: bool, db_session: AsyncSession, ctx: JobContext) -> str:
        db_session.add(
            Artifact(id=row_id, job_id=None, data={"by": ctx.job_id}, created_at=utcnow())
        )
        await db_session.flush()
        if fail:
            raise RuntimeError("undo the write")
        return row_id

    registry.register_function("write", write)

    async with running_worker(database) as (_, scheduler):
        job = await scheduler.submit("write", {"fail": fail})
        stored = await wait_for_terminal(database, job.id)

    assert stored.status == (JobStatus.FAILED if fail else JobStatus.COMPLETED)
    assert await artifact_count(database, row_id) == (0 if fail else 1)


async def test_injects_service_objects_and_the_job_context(
    database: Database, registry: type[TaskRegistry]
) -> None:
    seen: dict[str, Any] = {}

    async def child(value: int) -> int:
        return value * 10

    async def parent(
        n: int,
        handle: Database,
        store: ArtifactManager,
        queue: JobScheduler,
        me: JobContext,
    ) -> dict[str, Any]:
        seen.update(database=handle, artifacts=store, scheduler=queue, context=me)
        saved = await store.save({"note": n}, job_id=me.job_id)
        follow_up = await queue.submit("child", {"value": n})
        return {"saved": saved.id, "child": follow_up.id, "job_id": me.job_id}

    registry.register_function("child", child)
    definition = registry.register_function("parent", parent)
    assert set(definition.injected) == {"handle", "store", "queue", "me"}

    async with running_worker(database) as (worker, scheduler):
        job = await scheduler.submit("parent", {"n": 3})
        parent_job = await wait_for_terminal(database, job.id)
        assert parent_job.status == JobStatus.COMPLETED
        [record] = [
            a for a in await artifacts_of(database, job.id) if a.id == parent_job.result_artifact_id
        ]
        child_job = await wait_for_terminal(database, record.data["result"]["child"])

    assert seen["database"] is database
    assert seen["artifacts"] is worker.injectables.artifacts
    assert seen["scheduler"] is scheduler
    context = seen["context"]
    assert isinstance(context, JobContext)
    assert (context.job_id, context.attempt, context.params) == (job.id, 1, {"n": 3})
    assert record.data["result"]["job_id"] == job.id
    assert child_job.status == JobStatus.COMPLETED
    [child_artifact] = await artifacts_of(database, child_job.id)
    assert child_artifact.data["result"] == 30
    saved_ids = {a.id for a in await artifacts_of(database, job.id)}
    assert record.data["result"]["saved"] in saved_ids


async def test_progress_from_an_async_task_reaches_the_job_row(
    database: Database, registry: type[TaskRegistry]
) -> None:
    gate = asyncio.Event()

    async def report(ctx: JobContext) -> None:
        ctx.progress(1, 4, message="one of four")
        await asyncio.wait_for(gate.wait(), BLOCK_SECONDS)
        ctx.progress(1.0, message="done")

    registry.register_function("report", report)

    try:
        async with running_worker(database) as (_, scheduler):
            job = await scheduler.submit("report")

            async def quarter_done() -> bool:
                row = await fetch_job(database, job.id)
                return row.progress == 0.25 and row.progress_message == "one of four"

            await apoll_until(quarter_done, what="progress 0.25 on the job row")
            gate.set()
            stored = await wait_for_terminal(database, job.id)
    finally:
        gate.set()

    assert stored.status == JobStatus.COMPLETED
    assert (stored.progress, stored.progress_message) == (1.0, "done")


async def test_progress_from_a_sync_task_reaches_the_job_row(
    database: Database, registry: type[TaskRegistry]
) -> None:
    half = threading.Event()
    gate = threading.Event()

    def report(ctx: JobContext) -> None:
        ctx.progress(0.5, message="half")
        half.set()
        gate.wait(BLOCK_SECONDS)
        for step in range(1, 101):
            ctx.progress(step, 100, message=f"step {step}")

    registry.register_function("report", report)

    try:
        async with running_worker(database) as (_, scheduler):
            job = await scheduler.submit("report")
            await apoll_until(half.is_set, what="the task to report half way")

            async def half_done() -> bool:
                row = await fetch_job(database, job.id)
                return row.progress == 0.5 and row.progress_message == "half"

            await apoll_until(half_done, what="progress 0.5 on the job row")
            gate.set()
            stored = await wait_for_terminal(database, job.id)
    finally:
        gate.set()

    assert stored.status == JobStatus.COMPLETED
    # The last report wins; none is lost to the job finishing.
    assert (stored.progress, stored.progress_message) == (1.0, "step 100")


async def test_cancel_pending_job_cancels_at_once_without_running(
    database: Database, registry: type[TaskRegistry]
) -> None:
    calls: list[str] = []

    async def record(label: str) -> str:
        calls.append(label)
        return label

    registry.register_function("record", record)
    worker, scheduler = worker_for(database)
    try:
        doomed = await scheduler.submit("record", {"label": "doomed"})
        canceled = await scheduler.cancel(doomed.id)
        assert canceled.status == JobStatus.CANCELED
        assert canceled.cancel_requested is True
        assert canceled.finished_at is not None
        assert canceled.error is not None
        assert canceled.error.type == "JobCancelledError"
        # A job queued after it runs; the canceled one, older and first in line, never does.
        sentinel = await scheduler.submit("record", {"label": "sentinel"})
        await worker.start()
        assert (await wait_for_terminal(database, sentinel.id)).status == JobStatus.COMPLETED
    finally:
        await worker.stop()

    assert calls == ["sentinel"]
    stored = await fetch_job(database, doomed.id)
    assert stored.status == JobStatus.CANCELED
    assert stored.attempts == 0
    assert stored.started_at is None
    assert await artifacts_of(database, doomed.id) == []


async def test_cancel_running_async_job_cancels_its_coroutine(
    database: Database, registry: type[TaskRegistry]
) -> None:
    started = asyncio.Event()
    never = asyncio.Event()
    interrupted: list[bool] = []

    async def wait_forever() -> str:
        started.set()
        try:
            await asyncio.wait_for(never.wait(), BLOCK_SECONDS)
        except asyncio.CancelledError:
            interrupted.append(True)
            raise
        return "not canceled"

    registry.register_function("wait_forever", wait_forever)

    async with running_worker(database) as (_, scheduler):
        job = await scheduler.submit("wait_forever")
        await asyncio.wait_for(started.wait(), BLOCK_SECONDS)
        requested = await scheduler.cancel(job.id)
        assert requested.status == JobStatus.CANCELING
        assert requested.cancel_requested is True
        stored = await wait_for_terminal(database, job.id)

    assert interrupted == [True]
    assert stored.status == JobStatus.CANCELED
    assert stored.error is not None
    assert stored.error["type"] == "JobCancelledError"
    [artifact] = await artifacts_of(database, job.id)
    assert stored.result_artifact_id == artifact.id
    assert artifact.data["error"]["type"] == "JobCancelledError"
    assert isinstance(artifact.data["error"]["traceback"], str)
    assert artifact.data["result"] is None


async def test_cancel_running_sync_job_sets_its_flag(
    database: Database, registry: type[TaskRegistry]
) -> None:
    started = threading.Event()
    observed: list[bool] = []

    def cooperative(ctx: JobContext) -> str:
        started.set()
        deadline = time.monotonic() + BLOCK_SECONDS
        while not ctx.cancel_requested and time.monotonic() < deadline:
            time.sleep(0.005)
        observed.append(ctx.cancel_requested)
        ctx.raise_if_cancelled()
        return "not canceled"

    registry.register_function("cooperative", cooperative)

    async with running_worker(database) as (_, scheduler):
        job = await scheduler.submit("cooperative")
        await apoll_until(started.is_set, what="the sync task to start")
        await scheduler.cancel(job.id)
        stored = await wait_for_terminal(database, job.id)

    assert observed == [True]
    assert stored.status == JobStatus.CANCELED
    assert stored.error is not None
    assert stored.error["type"] == "JobCancelledError"
    [artifact] = await artifacts_of(database, job.id)
    assert artifact.data["error"]["type"] == "JobCancelledError"


async def test_cancel_from_another_process_reaches_the_worker_by_heartbeat(
    database: Database, registry: type[TaskRegistry]
) -> None:
    started = asyncio.Event()
    never = asyncio.Event()

    async def wait_forever() -> None:
        started.set()
        await asyncio.wait_for(never.wait(), BLOCK_SECONDS)

    registry.register_function("wait_forever", wait_forever)
    # An API process elsewhere: same database, no worker of its own.
    remote = JobScheduler(database, max_concurrency=1)

    async with running_worker(database, lease_seconds=0.3) as (_, scheduler):
        job = await scheduler.submit("wait_forever")
        await asyncio.wait_for(started.wait(), BLOCK_SECONDS)
        await remote.cancel(job.id)
        stored = await wait_for_terminal(database, job.id)

    assert stored.status == JobStatus.CANCELED
    assert len(await artifacts_of(database, job.id)) == 1


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_stop_hands_back_a_job_still_running_after_the_grace_period(
    database: Database, registry: type[TaskRegistry], kind: str
) -> None:
    async_gate = asyncio.Event()
    thread_gate = threading.Event()
    calls = Gauge()

    async def slow_async() -> str:
        calls.enter()
        try:
            await asyncio.wait_for(async_gate.wait(), BLOCK_SECONDS)
        finally:
            calls.exit()
        return "done"

    def slow_sync() -> str:
        calls.enter()
        try:
            thread_gate.wait(BLOCK_SECONDS)
        finally:
            calls.exit()
        return "done"

    registry.register_function("slow", slow_async if kind == "async" else slow_sync)
    worker, scheduler = worker_for(database, shutdown_grace=0.1)
    try:
        await worker.start()
        job = await scheduler.submit("slow")
        await apoll_until(lambda: calls.current == 1, what="the task to start")
        assert (await fetch_job(database, job.id)).attempts == 1
        await worker.stop()
        thread_gate.set()
        await apoll_until(lambda: worker.running_count == 0, what="the worker to let go")
    finally:
        async_gate.set()
        thread_gate.set()
        await worker.stop()

    handed_back = await fetch_job(database, job.id)
    assert handed_back.status == JobStatus.PENDING
    assert handed_back.attempts == 0
    assert handed_back.worker_id is None
    assert handed_back.lease_expires_at is None
    assert await artifacts_of(database, job.id) == []

    # The next worker runs it as its first attempt.
    async with running_worker(database):
        rerun = await wait_for_terminal(database, job.id)
    assert rerun.status == JobStatus.COMPLETED
    assert rerun.attempts == 1


async def test_stop_lets_a_job_finish_within_the_grace_period(
    database: Database, registry: type[TaskRegistry]
) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def short() -> str:
        started.set()
        await asyncio.wait_for(gate.wait(), BLOCK_SECONDS)
        return "finished"

    registry.register_function("short", short)
    worker, scheduler = worker_for(database, shutdown_grace=BLOCK_SECONDS)
    try:
        await worker.start()
        job = await scheduler.submit("short")
        await asyncio.wait_for(started.wait(), BLOCK_SECONDS)
        stopping = asyncio.create_task(worker.stop())
        await apoll_until(lambda: not worker.is_alive, what="the claim loop to stop")
        assert not stopping.done()
        gate.set()
        await asyncio.wait_for(stopping, BLOCK_SECONDS)
    finally:
        gate.set()
        await worker.stop()

    stored = await fetch_job(database, job.id)
    assert stored.status == JobStatus.COMPLETED
    assert stored.attempts == 1
    [artifact] = await artifacts_of(database, job.id)
    assert artifact.data["result"] == "finished"


def local_worker_id(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:abc123"


async def test_requeues_the_job_of_a_dead_local_worker(
    database: Database, registry: type[TaskRegistry]
) -> None:
    calls: list[int] = []

    async def resumable(ctx: JobContext) -> int:
        calls.append(ctx.attempt)
        return ctx.attempt

    registry.register_function("resumable", resumable, retries=1)
    dead = await insert_job(
        database,
        task_name="resumable",
        status=JobStatus.RUNNING,
        worker_id=local_worker_id(exited_pid()),
        lease_expires_at=later(3600),
        started_at=ago(5),
        attempts=1,
        max_attempts=2,
    )
    alive_id = local_worker_id(os.getppid())
    alive = await insert_job(
        database,
        task_name="resumable",
        status=JobStatus.RUNNING,
        worker_id=alive_id,
        lease_expires_at=later(3600),
        attempts=1,
        max_attempts=2,
    )

    async with running_worker(database):
        stored = await wait_for_terminal(database, dead.id)

    # Re-queued without using an attempt: the re-run is attempt 1 again.
    assert stored.status == JobStatus.COMPLETED
    assert (stored.attempts, stored.worker_losses) == (1, 1)
    assert stored.error is None
    assert calls == [1]
    [artifact] = await artifacts_of(database, dead.id)
    assert artifact.data["result"] == 1
    untouched = await fetch_job(database, alive.id)
    assert (untouched.status, untouched.worker_id) == (JobStatus.RUNNING, alive_id)


async def test_fails_the_job_of_a_dead_local_worker_past_its_worker_losses(
    database: Database, registry: type[TaskRegistry]
) -> None:
    calls: list[int] = []

    async def once() -> None:
        calls.append(1)

    registry.register_function("once", once)
    dead = await insert_job(
        database,
        task_name="once",
        params={},
        status=JobStatus.RUNNING,
        worker_id=local_worker_id(exited_pid()),
        lease_expires_at=later(3600),
        attempts=1,
        max_attempts=1,
        worker_losses=1,
        max_worker_losses=1,
    )

    async with running_worker(database):
        stored = await wait_for_terminal(database, dead.id)

    assert stored.status == JobStatus.FAILED
    assert stored.error is not None
    assert stored.error["type"] == "WorkerLost"
    assert stored.finished_at is not None
    assert stored.attempts == 1
    assert calls == []
    [artifact] = await artifacts_of(database, dead.id)
    assert stored.result_artifact_id == artifact.id
    assert artifact.data["task_name"] == "once"
    assert artifact.data["result"] is None
    assert artifact.data["error"]["type"] == "WorkerLost"
    assert set(artifact.data["error"]) == {"type", "message", "traceback"}


@pytest.mark.parametrize(
    ("worker_losses", "expected"), [(0, JobStatus.COMPLETED), (3, JobStatus.FAILED)]
)
async def test_recovers_jobs_whose_lease_expired(
    database: Database, registry: type[TaskRegistry], worker_losses: int, expected: JobStatus
) -> None:
    attempts = max_attempts = 3

    async def resumable() -> str:
        return "resumed"

    registry.register_function("resumable", resumable)
    remote = "elsewhere.example:4242:zzzzzz"
    expired = await insert_job(
        database,
        task_name="resumable",
        status=JobStatus.RUNNING,
        worker_id=remote,
        lease_expires_at=ago(1),
        attempts=attempts,
        max_attempts=max_attempts,
        worker_losses=worker_losses,
    )
    healthy = await insert_job(
        database,
        task_name="resumable",
        status=JobStatus.RUNNING,
        worker_id=remote,
        lease_expires_at=later(3600),
        attempts=1,
        max_attempts=3,
    )

    async with running_worker(database):
        stored = await wait_for_terminal(database, expired.id)

    assert stored.status == expected
    # A lost worker never uses an attempt, even the last one.
    assert stored.attempts == attempts
    if expected is JobStatus.COMPLETED:
        assert stored.error is None
    else:
        assert stored.error is not None
        assert stored.error["type"] == "WorkerLost"
    assert len(await artifacts_of(database, expired.id)) == 1
    untouched = await fetch_job(database, healthy.id)
    assert (untouched.status, untouched.worker_id) == (JobStatus.RUNNING, remote)


async def test_a_worker_claims_only_jobs_of_tasks_it_has_registered(database: Database) -> None:
    # A rolling deploy: the old worker lacks a task the new one has.
    async def known() -> str:
        return "known"

    async def added(x: int) -> int:
        return x * 2

    old, new = Registry(), Registry()
    old.register_function("known", known)
    new.register_function("known", known)
    new.register_function("added", added)
    # Ahead in the queue (higher priority), yet the old worker must leave it alone.
    waiting = await insert_job(database, task_name="added", params={"x": 21}, priority=10)
    plain = await insert_job(database, task_name="known")

    async with running_worker(database, registry=old, worker_id="old:1:a"):
        assert (await wait_for_terminal(database, plain.id)).status == JobStatus.COMPLETED
        assert (await fetch_job(database, waiting.id)).status == JobStatus.PENDING
        async with running_worker(database, registry=new, worker_id="new:2:b"):
            stored = await wait_for_terminal(database, waiting.id)

    assert (stored.status, stored.worker_id, stored.attempts) == (JobStatus.COMPLETED, "new:2:b", 1)
    [artifact] = await artifacts_of(database, waiting.id)
    assert artifact.data["result"] == 42


async def test_many_concurrent_http_submissions_lose_nothing(
    client_factory: ClientFactory, database: Database, registry: type[TaskRegistry]
) -> None:
    total = 300

    async def square(n: int) -> int:
        await asyncio.sleep(0)
        return n * n

    def cube(n: int) -> int:
        return n**3

    registry.register_function("square", square)
    registry.register_function("cube", cube)

    async with client_factory(max_concurrency=8) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"/api/v1/tasks/{'square' if n % 2 else 'cube'}/$execute",
                    json={"params": {"n": n}},
                )
                for n in range(total)
            )
        )
        assert [r.status_code for r in responses] == [202] * total
        job_ids = {r.json()["job_id"] for r in responses}
        assert len(job_ids) == total

        async def all_done() -> bool:
            return await count_jobs(database, Job.status == JobStatus.COMPLETED) == total

        await apoll_until(all_done, within=120, what=f"{total} completed jobs")

    assert await count_jobs(database) == total
    async with database.session() as session:
        per_job = dict(
            (
                await session.execute(
                    select(Artifact.job_id, func.count()).group_by(Artifact.job_id)
                )
            ).all()
        )
        results = {
            job_id: (data["params"]["n"], data["result"], data["task_name"])
            for job_id, data in (await session.execute(select(Artifact.job_id, Artifact.data)))
        }
    assert set(per_job) == job_ids
    assert set(per_job.values()) == {1}
    for n, result, task_name in results.values():
        assert result == (n * n if task_name == "square" else n**3)


async def test_timeout_option_stops_a_task_that_runs_too_long(
    database: Database, registry: type[TaskRegistry]
) -> None:
    gate = asyncio.Event()

    async def too_slow() -> str:
        await asyncio.wait_for(gate.wait(), BLOCK_SECONDS)
        return "finished anyway"

    registry.register_function("too_slow", too_slow, timeout=0.2)

    try:
        async with running_worker(database) as (_, scheduler):
            job = await scheduler.submit("too_slow")
            stored = await scheduler.wait(job.id, 2)
            gate.set()
    finally:
        gate.set()

    assert stored.status == JobStatus.FAILED
    assert stored.error is not None
    assert "Timeout" in stored.error.type


async def test_per_task_max_concurrency_option_holds(
    database: Database, registry: type[TaskRegistry]
) -> None:
    gauge = Gauge()

    async def one_at_a_time() -> None:
        gauge.enter()
        try:
            for _ in range(5):
                await asyncio.sleep(0.01)
        finally:
            gauge.exit()

    registry.register_function("one_at_a_time", one_at_a_time, max_concurrency=1)
    worker, scheduler = worker_for(database, concurrency=4)
    try:
        ids = [(await scheduler.submit("one_at_a_time")).id for _ in range(4)]
        await worker.start()
        for job_id in ids:
            await wait_for_terminal(database, job_id)
    finally:
        await worker.stop()

    assert gauge.calls == 4
    assert gauge.peak == 1


async def test_stop_keeps_the_result_of_a_job_that_reported_progress_and_finished(
    database: Database, registry: type[TaskRegistry]
) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def short(ctx: JobContext) -> str:
        started.set()
        await asyncio.wait_for(gate.wait(), BLOCK_SECONDS)
        ctx.progress(1.0, message="all done")
        return "finished"

    registry.register_function("short", short)
    worker, scheduler = worker_for(database, shutdown_grace=BLOCK_SECONDS)
    try:
        await worker.start()
        job = await scheduler.submit("short")
        await asyncio.wait_for(started.wait(), BLOCK_SECONDS)
        stopping = asyncio.create_task(worker.stop())
        await apoll_until(lambda: not worker.is_alive, what="the claim loop to stop")
        gate.set()
        await asyncio.wait_for(stopping, BLOCK_SECONDS)
        await apoll_until(lambda: worker.running_count == 0, what="the worker to let go")
    finally:
        gate.set()
        await worker.stop()

    stored = await fetch_job(database, job.id)
    assert stored.status == JobStatus.COMPLETED
    assert stored.attempts == 1
    assert len(await artifacts_of(database, job.id)) == 1


async def test_task_can_write_with_its_session_and_then_use_the_writer_path(
    sqlite_database_url: str, registry: type[TaskRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short busy timeout turns the stall into a prompt failure instead of a 30 s wait.
    monkeypatch.setattr("app.db.database.SQLITE_BUSY_TIMEOUT_MS", 1000)
    row_id = new_id()

    async def child() -> str:
        return "child ran"

    async def parent(session: AsyncSession, queue: JobScheduler) -> str:
        session.add(Artifact(id=row_id, job_id=None, data={"own": "row"}, created_at=utcnow()))
        await session.flush()
        follow_up = await queue.submit("child")
        return follow_up.id

    registry.register_function("child", child)
    registry.register_function("parent", parent)
    database = Database(sqlite_database_url)
    try:
        async with running_worker(database) as (_, scheduler):
            job = await scheduler.submit("parent")
            stored = await wait_for_terminal(database, job.id)
        assert stored.error is None
        assert stored.status == JobStatus.COMPLETED
        assert await artifact_count(database, row_id) == 1
    finally:
        await database.dispose()


async def test_a_result_is_discarded_when_another_worker_took_the_job_over(
    database: Database, registry: type[TaskRegistry]
) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.wait_for(gate.wait(), BLOCK_SECONDS)
        return "too late"

    registry.register_function("slow", slow)
    successor = "elsewhere.example:7:succes"

    try:
        async with running_worker(database) as (_, scheduler):
            job = await scheduler.submit("slow")
            await asyncio.wait_for(started.wait(), BLOCK_SECONDS)
            # As if this worker's lease had expired and another worker had claimed the job.
            async with database.transaction() as session:
                row = await session.get(Job, job.id)
                assert row is not None
                row.worker_id = successor
                row.attempts = 2
            gate.set()
    finally:
        gate.set()

    stored = await fetch_job(database, job.id)
    assert (stored.status, stored.worker_id, stored.attempts) == (
        JobStatus.RUNNING,
        successor,
        2,
    )
    assert stored.result_artifact_id is None
    assert await artifacts_of(database, job.id) == []


async def test_two_workers_in_one_process_leave_each_others_jobs_alone(
    database: Database, registry: type[TaskRegistry]
) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def held() -> str:
        started.set()
        await asyncio.wait_for(gate.wait(), BLOCK_SECONDS)
        return "held"

    async def sentinel() -> str:
        return "ran"

    registry.register_function("held", held)
    registry.register_function("sentinel", sentinel)

    try:
        async with running_worker(database, concurrency=1) as (first, scheduler):
            job = await scheduler.submit("held")
            await asyncio.wait_for(started.wait(), BLOCK_SECONDS)
            async with running_worker(database, concurrency=1, lease_seconds=0.3):
                # Only the second worker has a free slot: once it has run this job, it has
                # been through its recovery pass at least once.
                probe = await scheduler.submit("sentinel")
                assert (await wait_for_terminal(database, probe.id)).status == JobStatus.COMPLETED
                stored = await fetch_job(database, job.id)
                gate.set()
            assert (stored.status, stored.worker_id) == (JobStatus.RUNNING, first.worker_id)
            finished = await wait_for_terminal(database, job.id)
    finally:
        gate.set()

    assert finished.status == JobStatus.COMPLETED
    assert finished.attempts == 1


async def test_an_idle_worker_claims_in_the_transaction_that_queues_the_job(
    database: Database, registry: type[TaskRegistry]
) -> None:
    """The service's worker shares its store's group commit with submits: a job queued while
    the worker has free slots is claimed in its own insert's transaction, not one later."""

    @registry.register("idle_noop")
    async def idle_noop() -> int:
        return 1

    scheduler = JobScheduler(database, max_concurrency=2, registry=registry.default())
    worker = Worker(
        database,
        WorkerConfig(concurrency=2, poll_interval=30.0),
        injectables=Injectables(database, ArtifactManager(database), scheduler),
        registry=registry.default(),
        store=scheduler.store,
    )
    scheduler.worker = worker
    open_transactions: dict[int, list[str]] = {}  # by connection
    transactions: list[list[str]] = []

    def statement(conn: Any, *args: Any) -> None:
        text = " ".join(str(args[1]).split())[:40].upper()
        open_transactions.setdefault(id(conn), []).append(text)

    def commit(conn: Any) -> None:
        transactions.append(open_transactions.pop(id(conn), []))

    engine = database.engine.sync_engine
    await worker.start()
    try:
        await worker._claims.settled()  # the start-up claim (nothing to claim) is over
        event.listen(engine, "before_cursor_execute", statement)
        event.listen(engine, "commit", commit)
        try:
            receipt = await scheduler.accept("idle_noop", {})
            await wait_for_terminal(database, receipt.job_id)
        finally:
            event.remove(engine, "before_cursor_execute", statement)
            event.remove(engine, "commit", commit)
    finally:
        await worker.stop()

    [queued] = [t for t in transactions if any(s.startswith("INSERT INTO JOBS") for s in t)]
    inserted = next(i for i, s in enumerate(queued) if s.startswith("INSERT INTO JOBS"))
    assert any(s.startswith("UPDATE JOBS SET STATUS") for s in queued[inserted:]), queued
