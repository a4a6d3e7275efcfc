"""The worker's heartbeat row, and recovering the jobs of a worker whose row expired."""

from app.db.database import Database
from app.jobs.context import JobContext
from app.jobs.models import JobStatus
from app.tasks.registry import TaskRegistry
from tests.helpers import apoll_until
from tests.jobs.helpers import (
    ago,
    fetch_job,
    insert_job,
    later,
    running_worker,
    wait_for_terminal,
)
from tests.workers.helpers import OTHER_HOST_WORKER, add_worker, fetch_worker


async def test_a_worker_registers_beats_and_marks_itself_stopped(
    database: Database, registry: type[TaskRegistry]
) -> None:
    registry.register_function("noop", lambda: None)
    async with running_worker(database, lease_seconds=0.6) as (worker, _):

        async def registered() -> bool:
            return await fetch_worker(database, worker.worker_id) is not None

        await apoll_until(registered, what="the worker's row")
        first = await fetch_worker(database, worker.worker_id)
        assert first is not None
        assert (first.tasks, first.stopped_at, first.running) == (["noop"], None, 0)

        async def beaten() -> bool:
            row = await fetch_worker(database, worker.worker_id)
            return row is not None and row.last_seen_at > first.last_seen_at

        await apoll_until(beaten, what="a heartbeat")
    stopped = await fetch_worker(database, worker.worker_id)
    assert stopped is not None
    assert stopped.stop_reason == "stopped"
    assert stopped.stopped_at is not None
    assert stopped.started_at == first.started_at


async def test_jobs_of_an_expired_worker_are_requeued_before_their_lease_ends(
    database: Database, registry: type[TaskRegistry]
) -> None:
    calls: list[int] = []

    async def resumable(ctx: JobContext) -> int:
        calls.append(ctx.attempt)
        return ctx.attempt

    registry.register_function("resumable", resumable)
    await add_worker(database, last_seen_at=ago(120), running=1)
    lease_end = later(3600)
    lost = await insert_job(
        database,
        task_name="resumable",
        status=JobStatus.RUNNING,
        worker_id=OTHER_HOST_WORKER,
        lease_expires_at=lease_end,
        started_at=ago(120),
        attempts=1,
        max_attempts=1,
    )
    # A worker of another host that still beats keeps its job.
    await add_worker(database, "otherhost:7:1-alive", last_seen_at=ago(0))
    kept = await insert_job(
        database,
        task_name="resumable",
        status=JobStatus.RUNNING,
        worker_id="otherhost:7:1-alive",
        lease_expires_at=lease_end,
        attempts=1,
    )

    async with running_worker(database, worker_timeout=30.0):
        done = await wait_for_terminal(database, lost.id)

    # Re-queued without using an attempt (the one allowed attempt is the re-run).
    assert done.status == JobStatus.COMPLETED
    assert (done.attempts, done.worker_losses) == (1, 1)
    assert calls == [1]
    expired = await fetch_worker(database, OTHER_HOST_WORKER)
    assert expired is not None
    assert (expired.stop_reason, expired.running) == ("expired", 0)
    untouched = await fetch_job(database, kept.id)
    assert untouched.status == JobStatus.RUNNING
    alive = await fetch_worker(database, "otherhost:7:1-alive")
    assert alive is not None
    assert alive.stopped_at is None
