"""Following a job without polling: the event bus, `wait_until` and `stream_events`."""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

import pytest
from sqlalchemy import delete, update

from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs import live
from app.jobs.events import EventBus, EventType
from app.jobs.live import stream_events, wait_until
from app.jobs.models import Job, JobStatus
from app.jobs.schemas import JobEventRead
from app.jobs.store.rows import append_events

WAIT = 10.0


@pytest.fixture
def no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the slow re-check too slow to matter: only bus events may wake a waiter."""
    monkeypatch.setattr(live, "RECHECK_SECONDS", 60.0)


async def add_job(database: Database, *events: str, status: JobStatus = JobStatus.RUNNING) -> str:
    """A job row with `events` recorded through `append_events` (numbered from 1)."""
    now = utcnow()
    job = Job(
        id=new_id(),
        task_name="followed",
        status=status,
        params={},
        priority=0,
        run_at=now,
        created_at=now,
        attempts=1,
        max_attempts=1,
        event_seq=0,
    )
    async with database.transaction() as session:
        session.add(job)
        await session.flush()
        await append_events(session, job.id, [(event, {"n": i}) for i, event in enumerate(events)])
    return job.id


async def add_events(
    database: Database, job_id: str, *events: str, status: JobStatus | None = None
) -> int:
    async with database.transaction() as session:
        if status is not None:
            await session.execute(update(Job).where(Job.id == job_id).values(status=status))
        return await append_events(session, job_id, [(event, {}) for event in events])


class Follower:
    """Consumes `stream_events` in a task, handing each event over through a queue."""

    def __init__(self, stream: AsyncIterator[JobEventRead]) -> None:
        self.stream = stream
        self.queue: asyncio.Queue[JobEventRead] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.stream:
            await self.queue.put(event)

    async def take(self, count: int) -> list[tuple[int, str]]:
        events = [await asyncio.wait_for(self.queue.get(), WAIT) for _ in range(count)]
        return [(event.seq, event.type) for event in events]

    async def ended(self) -> list[tuple[int, str]]:
        """Wait for the stream to end by itself; return the events it sent meanwhile."""
        await asyncio.wait_for(self.task, WAIT)
        rest: list[tuple[int, str]] = []
        while not self.queue.empty():
            event = self.queue.get_nowait()
            rest.append((event.seq, event.type))
        return rest

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def followers() -> AsyncIterator[list[Follower]]:
    started: list[Follower] = []
    try:
        yield started
    finally:
        for follower in started:
            await follower.close()


# EventBus


async def test_publish_wakes_only_subscribers_of_that_job() -> None:
    bus = EventBus()
    with bus.subscribe("a") as a1, bus.subscribe("a") as a2, bus.subscribe("b") as b:
        assert bus.subscriber_count == 3
        bus.publish(["a", "unknown"])
        assert a1.is_set()
        assert a2.is_set()
        assert not b.is_set()
    assert bus.subscriber_count == 0


async def test_publish_payload_splits_comma_separated_ids() -> None:
    bus = EventBus()
    with bus.subscribe("a") as a, bus.subscribe("b") as b, bus.subscribe("c") as c:
        bus.publish_payload("a,,b,")
        assert (a.is_set(), b.is_set(), c.is_set()) == (True, True, False)
        bus.publish_payload("")
        assert not c.is_set()


async def test_publish_all_wakes_everyone() -> None:
    bus = EventBus()
    with bus.subscribe("a") as a, bus.subscribe("b") as b:
        bus.publish_all()
        assert a.is_set()
        assert b.is_set()


async def test_publishing_without_subscribers_leaves_nothing_behind() -> None:
    bus = EventBus()
    bus.publish(["a", "b"])
    bus.publish_payload("c")
    bus.publish_all()
    assert bus.subscriber_count == 0
    with bus.subscribe("a") as a:
        assert not a.is_set(), "a publish before subscribing must not wake a later subscriber"


async def test_subscription_ends_when_the_block_raises() -> None:
    bus = EventBus()

    def fail_inside() -> None:
        with bus.subscribe("a"):
            assert bus.subscriber_count == 1
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_inside()
    assert bus.subscriber_count == 0
    with bus.subscribe("a") as again:
        bus.publish(["a"])
        assert again.is_set()


# wait_until


async def test_wait_until_returns_at_once_when_the_check_holds() -> None:
    bus = EventBus()
    calls = 0

    async def check() -> bool:
        nonlocal calls
        calls += 1
        return True

    assert await asyncio.wait_for(wait_until(bus, "a", 30, check), WAIT) is True
    assert calls == 1
    assert bus.subscriber_count == 0


async def test_wait_until_rechecks_on_each_event_of_the_job(no_recheck: None) -> None:
    bus = EventBus()
    calls = 0
    checked = asyncio.Event()
    done = False

    async def check() -> bool:
        nonlocal calls
        calls += 1
        checked.set()
        return done

    waiter = asyncio.create_task(wait_until(bus, "a", 30, check))
    await asyncio.wait_for(checked.wait(), WAIT)
    assert bus.subscriber_count == 1

    checked.clear()
    bus.publish(["other"])
    bus.publish(["a"])
    await asyncio.wait_for(checked.wait(), WAIT)
    assert calls == 2, "only the event of job a should trigger a check"

    done = True
    bus.publish_payload("a")
    assert await asyncio.wait_for(waiter, WAIT) is True
    assert calls == 3
    assert bus.subscriber_count == 0


async def test_wait_until_gives_up_after_its_time_without_polling() -> None:
    bus = EventBus()
    calls = 0

    async def check() -> bool:
        nonlocal calls
        calls += 1
        return False

    assert await asyncio.wait_for(wait_until(bus, "a", 0.3, check), WAIT) is False
    # One check at the start and one when the time is up; nothing in between.
    assert calls <= 2
    assert bus.subscriber_count == 0


async def test_wait_until_rechecks_slowly_without_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "RECHECK_SECONDS", 0.05)
    bus = EventBus()
    calls = 0

    async def check() -> bool:
        nonlocal calls
        calls += 1
        return calls == 3

    assert await asyncio.wait_for(wait_until(bus, "a", 30, check), WAIT) is True
    assert calls == 3


async def test_wait_until_unsubscribes_when_the_check_raises() -> None:
    bus = EventBus()

    async def check() -> bool:
        raise LookupError("gone")

    with pytest.raises(LookupError):
        await wait_until(bus, "a", 30, check)
    assert bus.subscriber_count == 0


# stream_events


async def test_stream_yields_events_in_order_and_stops_after_the_terminal_event(
    database: Database, followers: list[Follower], no_recheck: None
) -> None:
    bus = EventBus()
    job_id = await add_job(database, EventType.CREATED, EventType.STARTED)
    follower = Follower(stream_events(database, bus, job_id, 0))
    followers.append(follower)

    assert await follower.take(2) == [(1, "created"), (2, "started")]
    assert bus.subscriber_count == 1

    await add_events(database, job_id, EventType.PROGRESS, EventType.LOG)
    bus.publish([job_id])
    assert await follower.take(2) == [(3, "progress"), (4, "log")]
    assert not follower.task.done()

    await add_events(database, job_id, EventType.COMPLETED, status=JobStatus.COMPLETED)
    # Anything recorded after the terminal event is not part of the stream.
    await add_events(database, job_id, EventType.LOG)
    bus.publish([job_id])
    assert await follower.ended() == [(5, "completed")]
    assert bus.subscriber_count == 0


async def test_stream_carries_the_event_data(database: Database) -> None:
    bus = EventBus()
    job_id = await add_job(database, EventType.CREATED, EventType.FAILED, status=JobStatus.FAILED)

    events = [event async for event in stream_events(database, bus, job_id, 0)]

    assert [(e.seq, e.type, e.data) for e in events] == [
        (1, "created", {"n": 0}),
        (2, "failed", {"n": 1}),
    ]
    assert all(event.created_at.tzinfo is not None for event in events)


async def test_stream_resumes_after_the_given_event(database: Database) -> None:
    bus = EventBus()
    job_id = await add_job(
        database,
        EventType.CREATED,
        EventType.STARTED,
        EventType.LOG,
        EventType.COMPLETED,
        status=JobStatus.COMPLETED,
    )

    resumed = [(e.seq, e.type) async for e in stream_events(database, bus, job_id, 2)]

    assert resumed == [(3, "log"), (4, "completed")]


async def test_stream_of_a_finished_job_after_its_last_event_ends_at_once(
    database: Database,
) -> None:
    bus = EventBus()
    job_id = await add_job(
        database, EventType.CREATED, EventType.CANCELED, status=JobStatus.CANCELED
    )
    # A finished job recorded before events existed has none at all.
    old_id = await add_job(database, status=JobStatus.COMPLETED)

    async def collect(job: str, after: int) -> list[JobEventRead]:
        return [event async for event in stream_events(database, bus, job, after)]

    assert await asyncio.wait_for(collect(job_id, 2), WAIT) == []
    assert await asyncio.wait_for(collect(old_id, 0), WAIT) == []
    assert bus.subscriber_count == 0


async def test_stream_of_an_unknown_job_ends_at_once(database: Database) -> None:
    bus = EventBus()
    assert [e async for e in stream_events(database, bus, new_id(), 0)] == []


async def test_stream_ends_when_the_job_is_deleted(
    database: Database, followers: list[Follower], no_recheck: None
) -> None:
    bus = EventBus()
    job_id = await add_job(database, EventType.CREATED, EventType.STARTED)
    follower = Follower(stream_events(database, bus, job_id, 0))
    followers.append(follower)
    assert await follower.take(2) == [(1, "created"), (2, "started")]

    async with database.transaction() as session:
        await session.execute(delete(Job).where(Job.id == job_id))
    bus.publish([job_id])

    assert await follower.ended() == []
    assert bus.subscriber_count == 0


async def test_stream_reads_long_histories_in_batches(database: Database, no_recheck: None) -> None:
    bus = EventBus()
    count = live.BATCH + 20
    job_id = await add_job(database, EventType.CREATED, *[EventType.LOG] * count)
    await add_events(database, job_id, EventType.COMPLETED, status=JobStatus.COMPLETED)

    async def collect() -> list[int]:
        return [event.seq async for event in stream_events(database, bus, job_id, 0)]

    # A full batch must be followed by the next read at once, not after a wake-up.
    seqs = await asyncio.wait_for(collect(), WAIT)

    assert seqs == list(range(1, count + 3))


async def test_closing_a_stream_early_ends_its_subscription(database: Database) -> None:
    bus = EventBus()
    job_id = await add_job(database, EventType.CREATED, EventType.STARTED)
    stream = cast(AsyncGenerator[JobEventRead, None], stream_events(database, bus, job_id, 0))

    first = await asyncio.wait_for(anext(stream), WAIT)
    assert first.seq == 1
    assert bus.subscriber_count == 1
    await stream.aclose()

    assert bus.subscriber_count == 0


async def test_waiting_streams_hold_no_database_connection(
    database_url: str, no_recheck: None
) -> None:
    # On PostgreSQL this pool has at most two connections; SQLite's does not limit them.
    database = Database(database_url, pool_size=1)
    followers: list[Follower] = []
    try:
        bus = EventBus()
        job_id = await add_job(database, EventType.CREATED)
        followers.extend(Follower(stream_events(database, bus, job_id, 0)) for _ in range(6))
        for follower in followers:
            assert await follower.take(1) == [(1, "created")]
        # Six streams now wait for news; had they kept connections, no write could get one.
        await asyncio.wait_for(add_events(database, job_id, EventType.STARTED), WAIT)
        await asyncio.wait_for(
            add_events(database, job_id, EventType.COMPLETED, status=JobStatus.COMPLETED), WAIT
        )
        bus.publish([job_id])

        for follower in followers:
            assert await follower.ended() == [(2, "started"), (3, "completed")]
        assert bus.subscriber_count == 0
    finally:
        for follower in followers:
            await follower.close()
        await database.dispose()
