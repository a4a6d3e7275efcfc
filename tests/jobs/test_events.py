"""Job events: every job's history starts with `created`, is numbered 1..N without gaps, and
ends with exactly one terminal event, whichever way the job goes. Events are durable rows."""

import asyncio
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs.context import JobContext
from app.jobs.events import TERMINAL_EVENTS, EventType
from app.jobs.models import Job, JobEvent, JobStatus
from app.jobs.store.rows import append_events
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import execute, wait_for_job

WAIT = 15.0

Event = tuple[int, str, dict[str, Any]]


async def stored_events(database_url: str, *job_ids: str) -> dict[str, list[Event]]:
    """The events of `job_ids` as stored, read through a new connection pool."""
    database = Database(database_url)
    try:
        async with database.session() as session:
            rows = await session.scalars(
                select(JobEvent)
                .where(JobEvent.job_id.in_(job_ids))
                .order_by(JobEvent.job_id, JobEvent.seq)
            )
            events: dict[str, list[Event]] = {job_id: [] for job_id in job_ids}
            for row in rows:
                events[row.job_id].append((row.seq, row.type, row.data))
            return events
    finally:
        await database.dispose()


def types(events: list[Event]) -> list[str]:
    return [type_ for _, type_, _ in events]


def assert_well_formed(events: list[Event]) -> None:
    """Numbered 1..N, `created` first, exactly one terminal event and it is the last."""
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1)), types(events)
    assert events[0][1] == "created"
    terminal = [type_ for type_ in types(events) if type_ in TERMINAL_EVENTS]
    assert len(terminal) == 1, types(events)
    assert events[-1][1] in TERMINAL_EVENTS, types(events)


async def wait_for(condition: asyncio.Event) -> None:
    await asyncio.wait_for(condition.wait(), WAIT)


async def test_a_job_records_created_started_progress_logs_and_completed(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    async def steps(ctx: JobContext) -> str:
        ctx.logger.info("first")
        ctx.progress(0.5, message="half")
        await asyncio.sleep(0)
        ctx.logger.info("second")
        return "done"

    registry.register_function("steps", steps)
    async with client_factory() as client:
        job_id = await execute(client, "steps")
        job = await wait_for_job(client, job_id)
        listed = (await client.get(f"/api/v1/jobs/{job_id}/events")).json()

    events = (await stored_events(database_url, job_id))[job_id]
    assert_well_formed(events)
    assert types(events)[:2] == ["created", "started"]
    assert types(events)[-1] == "completed"
    assert [data["message"] for _, type_, data in events if type_ == "log"] == ["first", "second"]
    assert {"fraction": 0.5, "message": "half"} in [
        data for _, type_, data in events if type_ == "progress"
    ]
    created, started, completed = events[0][2], events[1][2], events[-1][2]
    assert created["status"] == "pending"
    assert started["attempt"] == 1
    assert completed["status"] == "completed"
    assert completed["result"] == job["result"]
    # The API pages exactly what is stored.
    assert listed["total"] == len(events)
    assert [(e["seq"], e["type"], e["data"]) for e in listed["items"]] == [
        (seq, type_, data) for seq, type_, data in events
    ]


async def test_a_failing_job_ends_with_one_failed_event(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    def broken() -> None:
        raise ValueError("no good")

    registry.register_function("broken", broken)
    async with client_factory() as client:
        job_id = await execute(client, "broken")
        job = await wait_for_job(client, job_id)

    events = (await stored_events(database_url, job_id))[job_id]
    assert_well_formed(events)
    assert types(events) == ["created", "started", "failed"]
    assert events[-1][2]["error"] == {"type": "ValueError", "message": "no good"}
    assert events[-1][2]["result"] == job["result"]


async def test_event_numbers_stay_gapless_under_50_concurrent_jobs(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    async def chatty_async(n: int, ctx: JobContext) -> int:
        for step in range(3):
            ctx.logger.info("job %d line %d", n, step)
            ctx.progress(step + 1, 3, message=f"job {n} step {step}")
            await asyncio.sleep(0)
        return n

    def chatty_sync(n: int, ctx: JobContext) -> int:
        for step in range(3):
            ctx.logger.info("job %d line %d", n, step)
            ctx.progress(step + 1, 3, message=f"job {n} step {step}")
        return n

    registry.register_function("chatty_async", chatty_async)
    registry.register_function("chatty_sync", chatty_sync)
    async with client_factory(max_concurrency=8) as client:
        ids = await asyncio.gather(
            *(
                execute(client, "chatty_async" if n % 2 else "chatty_sync", {"n": n})
                for n in range(50)
            )
        )
        jobs = [await wait_for_job(client, job_id, within=60) for job_id in ids]

    assert {job["status"] for job in jobs} == {"completed"}
    stored = await stored_events(database_url, *ids)
    for n, job_id in enumerate(ids):
        events = stored[job_id]
        assert_well_formed(events)
        assert types(events)[:2] == ["created", "started"]
        assert types(events)[-1] == "completed"
        lines = [data["message"] for _, type_, data in events if type_ == "log"]
        assert lines == [f"job {n} line {step}" for step in range(3)], "logs mixed up"
        progress = [data["message"] for _, type_, data in events if type_ == "progress"]
        assert progress, "no progress recorded"
        assert all(message.startswith(f"job {n} ") for message in progress)
        assert progress[-1] == f"job {n} step 2"


async def test_a_retried_job_shows_each_attempt(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    async def flaky(ctx: JobContext) -> int:
        if ctx.attempt == 1:
            raise ConnectionError("try again")
        return ctx.attempt

    registry.register_function("flaky", flaky, retries=1, retry_backoff=0)
    async with client_factory() as client:
        job_id = await execute(client, "flaky")
        job = await wait_for_job(client, job_id)

    assert (job["status"], job["attempts"]) == ("completed", 2)
    events = (await stored_events(database_url, job_id))[job_id]
    assert_well_formed(events)
    assert types(events) == ["created", "started", "retrying", "started", "completed"]
    retrying = events[2][2]
    assert retrying["attempt"] == 1
    assert retrying["error"] == {"type": "ConnectionError", "message": "try again"}
    assert [events[1][2]["attempt"], events[3][2]["attempt"]] == [1, 2]


async def test_canceling_a_pending_job_records_canceled(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    async def never() -> None:
        raise AssertionError("must not run")

    registry.register_function("never", never)
    async with client_factory(run_worker=False) as client:
        job_id = await execute(client, "never")
        response = await client.post(f"/api/v1/jobs/{job_id}/$cancel")
        assert response.status_code == 200, response.text

    events = (await stored_events(database_url, job_id))[job_id]
    assert_well_formed(events)
    assert types(events) == ["created", "canceled"]
    assert events[1][2]["status"] == "canceled"


async def test_canceling_a_running_job_records_the_request_then_canceled(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    registry.register_function("forever", forever)
    async with client_factory() as client:
        job_id = await execute(client, "forever")
        await wait_for(started)
        response = await client.post(f"/api/v1/jobs/{job_id}/$cancel")
        assert response.status_code == 200, response.text
        job = await wait_for_job(client, job_id)

    assert job["status"] == "canceled"
    events = (await stored_events(database_url, job_id))[job_id]
    assert_well_formed(events)
    assert types(events) == ["created", "started", "cancel_requested", "canceled"]


async def test_canceling_a_running_sync_job_records_the_request_then_canceled(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    started = threading.Event()

    def polite(ctx: JobContext) -> None:
        started.set()
        for _ in range(int(WAIT / 0.01)):
            ctx.raise_if_cancelled()
            threading.Event().wait(0.01)
        raise AssertionError("cancellation never arrived")

    registry.register_function("polite", polite)
    async with client_factory() as client:
        job_id = await execute(client, "polite")
        assert await asyncio.to_thread(started.wait, WAIT)
        response = await client.post(f"/api/v1/jobs/{job_id}/$cancel")
        assert response.status_code == 200, response.text
        job = await wait_for_job(client, job_id)

    assert job["status"] == "canceled"
    events = (await stored_events(database_url, job_id))[job_id]
    assert_well_formed(events)
    assert types(events) == ["created", "started", "cancel_requested", "canceled"]


def exited_pid() -> int:
    """The pid of a process that has already exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=WAIT)
    return process.pid


async def insert_running_job(
    database_url: str,
    task_name: str,
    *,
    worker_id: str,
    lease_ago: float | None,
    max_attempts: int,
    worker_losses: int = 0,
) -> str:
    """A job that some worker started (created and started events included) and never ended."""
    now = utcnow()
    lease = (
        now - timedelta(seconds=lease_ago) if lease_ago is not None else now + timedelta(hours=1)
    )
    job = Job(
        id=new_id(),
        task_name=task_name,
        status=JobStatus.RUNNING,
        params={},
        priority=0,
        run_at=now,
        created_at=now,
        started_at=now,
        attempts=1,
        max_attempts=max_attempts,
        worker_id=worker_id,
        lease_expires_at=lease,
        event_seq=0,
        worker_losses=worker_losses,
        max_worker_losses=3,
    )
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            session.add(job)
            await session.flush()
            last = await append_events(
                session,
                job.id,
                [(EventType.CREATED, {"status": "pending"}), (EventType.STARTED, {"attempt": 1})],
            )
            assert last == 2
    finally:
        await database.dispose()
    return job.id


def dead_local_worker() -> tuple[str, float | None]:
    """A worker id naming a process of this host that has exited; its lease looks fine."""
    return f"{socket.gethostname()}:{exited_pid()}:abc123", None


def worker_with_expired_lease() -> tuple[str, float | None]:
    """A worker on another host whose lease ran out a minute ago."""
    return "elsewhere.invalid:1:abc123", 60.0


LOST_WORKERS: dict[str, Callable[[], tuple[str, float | None]]] = {
    "dead local process": dead_local_worker,
    "expired lease": worker_with_expired_lease,
}


@pytest.mark.parametrize("lost", sorted(LOST_WORKERS))
async def test_a_job_of_a_lost_worker_is_requeued_then_runs_again(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry], lost: str
) -> None:
    async def resumable(ctx: JobContext) -> int:
        return ctx.attempt

    # No retries: a lost worker does not use the job's one attempt.
    registry.register_function("resumable", resumable)
    worker_id, lease_ago = LOST_WORKERS[lost]()
    job_id = await insert_running_job(
        database_url, "resumable", worker_id=worker_id, lease_ago=lease_ago, max_attempts=1
    )

    async with client_factory() as client:
        job = await wait_for_job(client, job_id)

    assert (job["status"], job["attempts"]) == ("completed", 1)
    events = (await stored_events(database_url, job_id))[job_id]
    assert_well_formed(events)
    assert types(events) == ["created", "started", "requeued", "started", "completed"]
    assert events[2][2]["error"]["type"] == "WorkerLost"
    assert events[2][2]["worker_losses"] == 1


async def test_a_job_whose_workers_were_lost_too_often_fails(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    async def once() -> None:
        raise AssertionError("must not run again")

    registry.register_function("once", once)
    job_id = await insert_running_job(
        database_url,
        "once",
        worker_id=f"{socket.gethostname()}:{exited_pid()}:abc123",
        lease_ago=None,
        max_attempts=1,
        worker_losses=3,
    )

    async with client_factory() as client:
        job = await wait_for_job(client, job_id)

    assert job["status"] == "failed"
    events = (await stored_events(database_url, job_id))[job_id]
    assert_well_formed(events)
    assert types(events) == ["created", "started", "failed"]
    assert events[-1][2]["error"]["type"] == "WorkerLost"
    assert events[-1][2]["result"] == job["result"]


async def test_a_job_handed_back_at_shutdown_is_released_then_runs_again(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    started = asyncio.Event()
    hold = True

    async def held() -> str:
        started.set()
        if hold:
            await asyncio.sleep(3600)
        return "second run"

    registry.register_function("held", held)
    async with client_factory(shutdown_grace_seconds=0.1) as client:
        job_id = await execute(client, "held")
        await wait_for(started)
    # The worker stopped before the job ended and handed it back to the queue.
    hold = False
    async with client_factory() as client:
        job = await wait_for_job(client, job_id)

    assert (job["status"], job["attempts"]) == ("completed", 1)
    events = (await stored_events(database_url, job_id))[job_id]
    assert_well_formed(events)
    assert types(events) == ["created", "started", "released", "started", "completed"]


async def test_append_events_numbers_after_the_last_and_skips_missing_jobs(
    database: Database,
) -> None:
    now = utcnow()
    job = Job(
        id=new_id(),
        task_name="t",
        status=JobStatus.RUNNING,
        params={},
        priority=0,
        run_at=now,
        created_at=now,
        attempts=1,
        max_attempts=1,
        event_seq=3,
    )
    async with database.transaction() as session:
        session.add(job)
        await session.flush()
        assert await append_events(session, job.id, [("log", {"a": 1}), ("log", {"a": 2})]) == 5
        assert await append_events(session, job.id, []) == 0
        assert await append_events(session, new_id(), [("log", {})]) == 0

    async with database.session() as session:
        rows = list(await session.scalars(select(JobEvent).order_by(JobEvent.seq)))
        stored = await session.get(Job, job.id)
    assert [(row.job_id, row.seq, row.data) for row in rows] == [
        (job.id, 4, {"a": 1}),
        (job.id, 5, {"a": 2}),
    ]
    assert stored is not None
    assert stored.event_seq == 5


async def test_deleting_a_job_deletes_its_events(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    async def quick() -> int:
        return 1

    registry.register_function("quick", quick)
    async with client_factory() as client:
        job_id = await execute(client, "quick")
        await wait_for_job(client, job_id)
        assert (await client.delete(f"/api/v1/jobs/{job_id}")).status_code == 204

    assert (await stored_events(database_url, job_id))[job_id] == []


async def test_lines_logged_after_a_timeout_do_not_follow_the_terminal_event(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    go_on = threading.Event()
    finished = threading.Event()

    def overrun(ctx: JobContext) -> None:
        go_on.wait(WAIT)
        ctx.logger.info("still here after the timeout")
        logging.getLogger("taskexec.task.overrun").warning("and again")
        finished.set()

    registry.register_function("overrun", overrun, timeout=0.2)
    async with client_factory() as client:
        job_id = await execute(client, "overrun")
        job = await wait_for_job(client, job_id)
        assert job["status"] == "failed"
        go_on.set()
        assert await asyncio.to_thread(finished.wait, WAIT)

        # Give the lines the thread handed over every chance to be stored.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        while loop.time() < deadline:
            events = (await stored_events(database_url, job_id))[job_id]
            if "log" in types(events):
                break
            await asyncio.sleep(0.05)

    events = (await stored_events(database_url, job_id))[job_id]
    assert_well_formed(events)


async def test_every_event_is_readable_after_a_restart(
    client_factory: ClientFactory, database_url: str, registry: type[TaskRegistry]
) -> None:
    async def noisy(ctx: JobContext) -> None:
        for n in range(5):
            ctx.logger.info("line %d", n)

    registry.register_function("noisy", noisy)
    async with client_factory() as client:
        job_id = await execute(client, "noisy")
        await wait_for_job(client, job_id)
        before = (await client.get(f"/api/v1/jobs/{job_id}/events")).json()

    async with client_factory(run_worker=False) as client:
        after = (await client.get(f"/api/v1/jobs/{job_id}/events")).json()

    assert after == before
    assert before["total"] == 8
