"""The firing loop on a real database (SQLite and PostgreSQL), on a clock the test controls."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from app.core.metrics import Metrics
from app.db.database import Database
from app.jobs.events import EventType
from app.jobs.models import Job, JobEvent, JobStatus
from app.jobs.scheduler import JobScheduler
from app.schedules.firing import FiringConfig, FiringLoop
from app.schedules.manager import ScheduleManager
from app.schedules.models import ScheduleRecord
from app.schedules.schemas import ScheduleCreate, ScheduleUpdate
from app.tasks.registry import TaskRegistry

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
CONFIG = FiringConfig(poll_interval=1.0, max_catchup=100, grace_seconds=60.0)


@pytest.fixture(autouse=True)
def report(registry: type[TaskRegistry]) -> None:
    @registry.register("report")
    def report(name: str = "x") -> str:
        return name


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def loop(database: Database, registry: type[TaskRegistry], metrics: Metrics) -> FiringLoop:
    return FiringLoop(database, CONFIG, registry=registry.default(), metrics=metrics)


@pytest.fixture
def manager(database: Database, registry: type[TaskRegistry]) -> ScheduleManager:
    return ScheduleManager(database, registry=registry.default())


@pytest.fixture
async def second_database(database_url: str) -> AsyncIterator[Database]:
    """Another handle on the same database: what a second process would have."""
    other = Database(database_url)
    try:
        yield other
    finally:
        await other.dispose()


async def make_schedule(
    manager: ScheduleManager, database: Database, *, next_fire_at: datetime = T0, **fields: Any
) -> str:
    """A schedule whose next fire time is `next_fire_at` (every minute unless told)."""
    fields.setdefault("interval_seconds", 60)
    created = await manager.create(ScheduleCreate(task_name="report", **fields))
    async with database.transaction() as session:
        await session.execute(
            update(ScheduleRecord)
            .where(ScheduleRecord.id == created.id)
            .values(next_fire_at=next_fire_at)
        )
    return created.id


async def fires(database: Database, schedule_id: str) -> list[Job]:
    async with database.read_session() as session:
        rows = await session.scalars(
            select(Job).where(Job.schedule_id == schedule_id).order_by(Job.scheduled_for)
        )
        return list(rows)


async def schedule_row(database: Database, schedule_id: str) -> ScheduleRecord:
    async with database.read_session() as session:
        record = await session.get(ScheduleRecord, schedule_id)
    assert record is not None
    return record


def missed(metrics: Metrics, schedule_id: str, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "taskexec_schedule_missed_fires_total",
        {"schedule": schedule_id, "task": "report", "reason": reason},
    )
    return value or 0.0


async def test_a_due_schedule_becomes_one_job_and_moves_on(
    database: Database, manager: ScheduleManager, loop: FiringLoop, metrics: Metrics
) -> None:
    schedule_id = await make_schedule(manager, database, params={"name": "tick"})
    assert await loop.tick(T0 - timedelta(seconds=1)) == T0
    assert await fires(database, schedule_id) == []

    earliest = await loop.tick(T0 + timedelta(milliseconds=200))

    [job] = await fires(database, schedule_id)
    assert (job.task_name, job.params, job.status) == ("report", {"name": "tick"}, "pending")
    assert job.scheduled_for == T0
    assert earliest == T0 + MINUTE
    record = await schedule_row(database, schedule_id)
    assert (record.next_fire_at, record.last_fired_at) == (T0 + MINUTE, T0)
    fires_total = metrics.registry.get_sample_value(
        "taskexec_schedule_fires_total", {"schedule": schedule_id, "task": "report"}
    )
    assert fires_total == 1
    async with database.read_session() as session:
        [created] = await session.scalars(select(JobEvent).where(JobEvent.job_id == job.id))
    assert created.type == EventType.CREATED
    assert created.data["source"] == "schedule"
    assert created.data["schedule_id"] == schedule_id
    assert created.data["scheduled_for"] == "2026-01-01T10:00:00.000000+00:00"


async def test_two_processes_racing_for_the_same_fires_queue_each_once(
    database: Database,
    second_database: Database,
    manager: ScheduleManager,
    registry: type[TaskRegistry],
) -> None:
    schedule_id = await make_schedule(manager, database)
    loops = [
        FiringLoop(db, CONFIG, registry=registry.default()) for db in (database, second_database)
    ]
    for minute in range(5):
        now = T0 + minute * MINUTE + timedelta(seconds=1)
        await asyncio.gather(*(each.tick(now) for each in loops))
    assert [job.scheduled_for for job in await fires(database, schedule_id)] == [
        T0 + i * MINUTE for i in range(5)
    ]


async def test_a_process_late_to_a_fire_hits_the_constraint_and_moves_on(
    database: Database,
    second_database: Database,
    manager: ScheduleManager,
    registry: type[TaskRegistry],
    loop: FiringLoop,
) -> None:
    schedule_id = await make_schedule(manager, database)
    stale = await schedule_row(database, schedule_id)  # read before the other process fired
    assert len(await loop.fire_due(stale, T0 + timedelta(seconds=1))) == 1

    late = FiringLoop(second_database, CONFIG, registry=registry.default())
    assert await late.fire_due(stale, T0 + timedelta(seconds=2)) == []

    assert len(await fires(database, schedule_id)) == 1
    # The late process does not move the schedule back either.
    assert (await schedule_row(database, schedule_id)).next_fire_at == T0 + MINUTE


@pytest.mark.parametrize(
    ("catchup", "expected", "missed_count"),
    [
        ("all", [T0 + i * MINUTE for i in range(6)], 0),
        ("latest", [T0 + 5 * MINUTE], 5),
        ("skip", [], 6),
    ],
)
async def test_catchup_after_downtime(
    database: Database,
    manager: ScheduleManager,
    registry: type[TaskRegistry],
    metrics: Metrics,
    catchup: str,
    expected: list[datetime],
    missed_count: int,
) -> None:
    schedule_id = await make_schedule(manager, database, catchup=catchup)
    config = FiringConfig(max_catchup=100, grace_seconds=10.0)
    loop = FiringLoop(database, config, registry=registry.default(), metrics=metrics)
    # No process ran from before 10:00 until 10:05:30 (the 10:05 fire is 30 s late).
    await loop.tick(T0 + 5 * MINUTE + timedelta(seconds=30))
    jobs = await fires(database, schedule_id)
    assert [job.scheduled_for for job in jobs] == expected
    # Late fires run now, never before their fire time.
    assert all(job.scheduled_for and job.run_at >= job.scheduled_for for job in jobs)
    assert missed(metrics, schedule_id, "catchup") == missed_count
    assert (await schedule_row(database, schedule_id)).next_fire_at == T0 + 6 * MINUTE


async def test_overlap_skip_waits_for_the_previous_fire_to_finish(
    database: Database, manager: ScheduleManager, loop: FiringLoop, metrics: Metrics
) -> None:
    schedule_id = await make_schedule(manager, database, overlap="skip")
    await loop.tick(T0)
    [first] = await fires(database, schedule_id)

    await loop.tick(T0 + MINUTE)  # the 10:00 job has not run yet
    assert len(await fires(database, schedule_id)) == 1
    assert missed(metrics, schedule_id, "overlap") == 1

    await JobScheduler(database, max_concurrency=1).cancel(first.id)
    await loop.tick(T0 + 2 * MINUTE)
    assert [job.scheduled_for for job in await fires(database, schedule_id)] == [
        T0,
        T0 + 2 * MINUTE,
    ]


async def test_overlap_allow_queues_while_the_previous_fire_is_pending(
    database: Database, manager: ScheduleManager, loop: FiringLoop
) -> None:
    schedule_id = await make_schedule(manager, database)
    await loop.tick(T0)
    await loop.tick(T0 + MINUTE)
    assert len(await fires(database, schedule_id)) == 2


async def test_a_paused_schedule_does_not_fire_and_resumes_from_now(
    database: Database, manager: ScheduleManager, loop: FiringLoop
) -> None:
    schedule_id = await make_schedule(manager, database)
    await manager.update(schedule_id, ScheduleUpdate(enabled=False))
    assert await loop.tick(T0 + 10 * MINUTE) is None
    assert await fires(database, schedule_id) == []

    resumed = await manager.update(schedule_id, ScheduleUpdate(enabled=True))
    assert resumed.next_fire_at is not None
    assert resumed.next_fire_at > datetime.now(UTC)
    assert len(resumed.next_fire_times) == 5


async def test_deleting_a_schedule_keeps_its_jobs(
    database: Database, manager: ScheduleManager, loop: FiringLoop
) -> None:
    schedule_id = await make_schedule(manager, database)
    await loop.tick(T0)
    await manager.delete(schedule_id)
    [job] = await fires(database, schedule_id)
    assert (job.schedule_id, job.scheduled_for, job.status) == (schedule_id, T0, "pending")


async def test_params_the_task_no_longer_accepts_are_not_fired(
    database: Database,
    manager: ScheduleManager,
    loop: FiringLoop,
    metrics: Metrics,
    registry: type[TaskRegistry],
) -> None:
    schedule_id = await make_schedule(manager, database, params={"name": "old"})
    registry.clear()

    @registry.register("report")
    def report(count: int) -> int:
        return count

    await loop.tick(T0)
    assert await fires(database, schedule_id) == []
    assert missed(metrics, schedule_id, "invalid_params") == 1
    assert (await schedule_row(database, schedule_id)).next_fire_at == T0 + MINUTE


async def test_schedules_of_tasks_this_process_does_not_know_wait_for_one_that_does(
    database: Database, manager: ScheduleManager, registry: type[TaskRegistry]
) -> None:
    schedule_id = await make_schedule(manager, database)
    saved = registry.snapshot()
    registry.clear()
    assert await FiringLoop(database, CONFIG, registry=registry.default()).tick(T0) is None
    registry.restore(saved)
    assert await fires(database, schedule_id) == []
    await FiringLoop(database, CONFIG, registry=registry.default()).tick(T0)
    assert len(await fires(database, schedule_id)) == 1


async def test_the_running_loop_fires_on_time_and_a_change_wakes_it(
    database: Database, manager: ScheduleManager, registry: type[TaskRegistry]
) -> None:
    # A long poll interval: only the wake-up (or the next fire time) gets it to look again.
    firing = FiringLoop(database, FiringConfig(poll_interval=300.0), registry=registry.default())
    manager.firing = firing
    queued: asyncio.Queue[str] = asyncio.Queue()

    def on_queued(job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            queued.put_nowait(job_id)

    firing.on_queued = on_queued
    firing.start()
    try:
        created = await manager.create(ScheduleCreate(task_name="report", interval_seconds=1))
        first = await asyncio.wait_for(queued.get(), 10)
        second = await asyncio.wait_for(queued.get(), 10)
    finally:
        await firing.stop()
    jobs = {job.id: job for job in await fires(database, created.id)}
    first_at, second_at = jobs[first].scheduled_for, jobs[second].scheduled_for
    assert first_at is not None
    assert second_at is not None
    assert second_at - first_at == timedelta(seconds=1)
    assert all(job.status == JobStatus.PENDING for job in jobs.values())


async def test_a_fire_gets_the_task_s_registered_options(
    database: Database, manager: ScheduleManager, loop: FiringLoop, registry: type[TaskRegistry]
) -> None:
    @registry.register("careful", retries=2, priority=5, timeout=3.0)
    def careful() -> None:
        pass

    created = await manager.create(ScheduleCreate(task_name="careful", interval_seconds=60))
    async with database.transaction() as session:
        await session.execute(
            update(ScheduleRecord).where(ScheduleRecord.id == created.id).values(next_fire_at=T0)
        )
    await loop.tick(T0)
    [job] = await fires(database, created.id)
    assert (job.max_attempts, job.priority, job.timeout_seconds) == (3, 5, 3.0)


async def test_fires_take_the_service_max_worker_losses_unless_the_task_sets_its_own(
    database: Database, registry: type[TaskRegistry], manager: ScheduleManager
) -> None:
    @registry.register("fragile", max_worker_losses=0)
    def fragile() -> None:
        return None

    config = FiringConfig(
        poll_interval=1.0, max_catchup=100, grace_seconds=60.0, max_worker_losses=7
    )
    loop = FiringLoop(database, config, registry=registry.default())
    by_service = await make_schedule(manager, database)
    by_task = await make_schedule(manager, database, next_fire_at=T0)
    async with database.transaction() as session:
        await session.execute(
            update(ScheduleRecord).where(ScheduleRecord.id == by_task).values(task_name="fragile")
        )

    await loop.tick(T0 + timedelta(milliseconds=200))

    [service_job] = await fires(database, by_service)
    [task_job] = await fires(database, by_task)
    assert (service_job.max_worker_losses, task_job.max_worker_losses) == (7, 0)


async def test_a_trigger_takes_the_service_max_worker_losses(
    database: Database, registry: type[TaskRegistry]
) -> None:
    manager = ScheduleManager(database, registry=registry.default(), max_worker_losses=5)
    schedule_id = await make_schedule(manager, database)

    accepted = await manager.trigger(schedule_id)

    [job] = await fires(database, schedule_id)
    assert (job.id, job.max_worker_losses) == (accepted.job_id, 5)
