"""Per-task and per-tag concurrency limits: the `ConcurrencyLimits` rules, the claim that
applies them, and peaks measured inside running tasks."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx

from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs.limits import ConcurrencyLimits
from app.jobs.models import Job, JobStatus
from app.jobs.store import JobStore
from app.jobs.store.claimed import ClaimedJob
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import apoll_until, wait_for_job

WAIT = 10.0


class Gauge:
    """Runs in progress and the highest count seen (tasks run on the test's event loop)."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self.runs = 0

    def enter(self) -> None:
        self.current += 1
        self.runs += 1
        self.peak = max(self.peak, self.current)

    def leave(self) -> None:
        self.current -= 1


async def _submit(client: httpx.AsyncClient, task: str) -> str:
    response = await client.post(f"/api/v1/tasks/{task}/$execute")
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def _count(client: httpx.AsyncClient, status: str, task: str) -> int:
    response = await client.get("/api/v1/jobs", params={"status": status, "task": task})
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def _gated(gauge: Gauge, gate: asyncio.Event) -> Callable[[], Awaitable[int]]:
    async def run() -> int:
        gauge.enter()
        try:
            await gate.wait()
            # Stay a moment after release, so runs started right after it overlap.
            await asyncio.sleep(0.02)
        finally:
            gauge.leave()
        return gauge.peak

    return run


# ConcurrencyLimits ----------------------------------------------------------------------------

LIMITS = ConcurrencyLimits(
    task_limits={"train": 2},
    tag_limits={"gpu": 3, "unused": 1},
    task_tags={"train": ("gpu",), "render": ("gpu", "io"), "fetch": ("io",), "plain": ()},
)


def test_task_limit_counts_only_that_task() -> None:
    assert LIMITS.has_room("train", {"train": 1})
    assert not LIMITS.has_room("train", {"train": 2})
    assert LIMITS.has_room("fetch", {"fetch": 50, "plain": 50})
    assert LIMITS.has_room("plain", {"plain": 1000})


def test_tag_limit_counts_every_task_with_the_tag() -> None:
    # render and train share the gpu tag: 1 + 2 fills its limit of 3 for both.
    assert LIMITS.has_room("render", {"train": 2})
    assert not LIMITS.has_room("render", {"train": 2, "render": 1})
    assert not LIMITS.has_room("train", {"train": 1, "render": 2})
    # Tasks without the tag neither count towards it nor are held back by it.
    assert LIMITS.has_room("render", {"train": 1, "fetch": 40, "plain": 9})
    assert LIMITS.has_room("fetch", {"train": 2, "render": 1})


def test_unregistered_task_names_are_not_limited() -> None:
    assert LIMITS.has_room("ghost", {"ghost": 99, "train": 2})
    # Running jobs of an unknown task carry no tags, so they do not fill a tag.
    assert LIMITS.has_room("render", {"ghost": 5, "train": 2})


def test_blocked_lists_the_tasks_without_room() -> None:
    assert LIMITS.blocked({}) == set()
    assert LIMITS.blocked({"train": 2}) == {"train"}
    assert LIMITS.blocked({"train": 1, "render": 2}) == {"train", "render"}
    assert LIMITS.blocked({"fetch": 100}) == set()


def test_active_only_when_some_limit_applies() -> None:
    assert not ConcurrencyLimits().active
    assert not ConcurrencyLimits(tag_limits={"gpu": 1}, task_tags={"a": ("cpu",)}).active
    assert ConcurrencyLimits(tag_limits={"gpu": 1}, task_tags={"a": ("gpu",)}).active
    assert ConcurrencyLimits(task_limits={"a": 1}).active


def test_from_registry_reads_options_and_tags(registry: type[TaskRegistry]) -> None:
    def noop() -> None:
        pass

    registry.register_function("train", noop, tags=["gpu"], max_concurrency=2)
    registry.register_function("fetch", noop, tags=["io"])
    limits = ConcurrencyLimits.from_registry(registry.default(), {"gpu": 1})
    assert limits.task_limits == {"train": 2}
    assert limits.tag_limits == {"gpu": 1}
    assert limits.task_tags == {"train": ("gpu",), "fetch": ("io",)}


# The claim -----------------------------------------------------------------------------------


async def _insert_pending(database: Database, names: list[str]) -> list[Job]:
    """Pending jobs of the given tasks, due in this order."""
    now = utcnow()
    jobs = [
        Job(
            id=new_id(),
            task_name=name,
            status=JobStatus.PENDING,
            params={},
            priority=0,
            run_at=now - timedelta(seconds=len(names) - i),
            created_at=now,
            attempts=0,
            max_attempts=1,
        )
        for i, name in enumerate(names)
    ]
    async with database.transaction() as session:
        session.add_all(jobs)
    return jobs


async def _claim(database: Database, limits: ConcurrencyLimits, limit: int) -> list[ClaimedJob]:
    async with database.transaction() as session:
        jobs, _ = await JobStore.claim_in(
            session,
            worker_id="w",
            limit=limit,
            lease_seconds=30,
            limits=limits,
            task_names=limits.task_tags,
        )
        return jobs


async def test_claim_skips_jobs_whose_limit_is_full_and_takes_later_ones(
    database: Database,
) -> None:
    # Many limited jobs ahead of the one that may run: the claim looks past them.
    jobs = await _insert_pending(database, ["train"] * 12 + ["fetch"])
    limits = ConcurrencyLimits(task_limits={"train": 1}, task_tags={"train": (), "fetch": ()})

    # The first candidates are all train; after taking one, the next round excludes the task.
    first = await _claim(database, limits, 2)
    assert [job.task_name for job in first] == ["train", "fetch"]
    assert first[0].id == jobs[0].id
    # With one train running, nothing else may be claimed.
    assert await _claim(database, limits, 5) == []


# Peaks inside running tasks ----------------------------------------------------------------


async def test_task_limit_holds_while_other_tasks_run_alongside(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    gate = asyncio.Event()
    limited, free = Gauge(), Gauge()
    registry.register_function("limited", _gated(limited, gate), max_concurrency=2)
    registry.register_function("free", _gated(free, gate))
    async with client_factory(max_concurrency=8, poll_interval=0.05) as client:
        try:
            ids = [await _submit(client, "limited") for _ in range(5)]
            ids += [await _submit(client, "free") for _ in range(3)]
            # The free jobs were queued after every limited one: once they run, the claim has
            # seen all the limited jobs and taken only as many as the limit allows.
            await apoll_until(lambda: free.current == 3, within=WAIT, what="the free tasks to run")
            await apoll_until(
                lambda: limited.current == 2, within=WAIT, what="two limited tasks to run"
            )
            assert await _count(client, "pending", "limited") == 3
            assert await _count(client, "running", "limited") == 2
        finally:
            gate.set()
        jobs = [await wait_for_job(client, job_id) for job_id in ids]

    assert [job["status"] for job in jobs] == ["completed"] * 8
    assert limited.peak == 2
    assert limited.runs == 5
    assert free.peak == 3


async def test_tag_limit_applies_across_tasks(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    gate = asyncio.Event()
    gpu, cpu = Gauge(), Gauge()
    registry.register_function("train", _gated(gpu, gate), tags=["gpu", "ml"])
    registry.register_function("render", _gated(gpu, gate), tags=["gpu"])
    registry.register_function("crunch", _gated(cpu, gate), tags=["cpu"])
    settings: dict[str, Any] = {"max_concurrency": 8, "poll_interval": 0.05}
    async with client_factory(tag_limits={"gpu": 1}, **settings) as client:
        try:
            ids = [await _submit(client, task) for task in ("train", "render", "train", "render")]
            ids += [await _submit(client, "crunch") for _ in range(2)]
            await apoll_until(
                lambda: cpu.current == 2, within=WAIT, what="the untagged-by-gpu tasks to run"
            )
            await apoll_until(lambda: gpu.current == 1, within=WAIT, what="one gpu task to run")
            pending = await _count(client, "pending", "train")
            pending += await _count(client, "pending", "render")
            assert pending == 3
        finally:
            gate.set()
        jobs = [await wait_for_job(client, job_id) for job_id in ids]

    assert [job["status"] for job in jobs] == ["completed"] * 6
    assert gpu.peak == 1
    assert gpu.runs == 4
    assert cpu.peak == 2
