"""In-process hooks: what they are told and when, and that a hook that raises or hangs is
bounded and never changes a job."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.jobs.schemas import JobRead
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry
from tests.conftest import make_settings, running_client
from tests.helpers import run_to_end, wait_for_job

WAIT = 15.0


class Recorder:
    """Records each hook call as (hook, job id, status)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.jobs: list[tuple[str, JobRead]] = []
        self._changed = asyncio.Event()

    def record(self, hook: str, job: JobRead) -> None:
        self.calls.append((hook, job.id, job.status.value))
        self.jobs.append((hook, job))
        self._changed.set()

    async def wait_for(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not check():
                self._changed.clear()
                await self._changed.wait()

    def of(self, job_id: str) -> list[tuple[str, str]]:
        return [(hook, status) for hook, jid, status in self.calls if jid == job_id]

    async def on_job_started(self, job: JobRead) -> None:
        self.record("started", job)

    async def on_job_finished(self, job: JobRead) -> None:
        self.record("finished", job)

    async def on_job_retrying(self, job: JobRead) -> None:
        self.record("retrying", job)

    async def on_cache_hit(self, job: JobRead) -> None:
        self.record("cache_hit", job)


@pytest.fixture(autouse=True)
def tasks(registry: type[TaskRegistry]) -> None:
    @registry.register("flaky", retries=1, retry_backoff=0)
    async def flaky(n: int, attempt_marker: list[int] | None = None) -> int:
        if n < 0:
            raise RuntimeError("negative")
        return n

    state = {"runs": 0}

    @registry.register("second_time_lucky", retries=1, retry_backoff=0)
    async def second_time_lucky() -> int:
        state["runs"] += 1
        if state["runs"] == 1:
            raise RuntimeError("first attempt fails")
        return state["runs"]

    @registry.register("cached", cache_ttl=600)
    async def cached(n: int) -> int:
        return n + 1


@asynccontextmanager
async def serve(
    database_url: str, hooks: object, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = (
        ServiceBuilder(
            info=ServiceInfo(display_name="hooks"), settings=make_settings(database_url, **settings)
        )
        .with_tasks()
        .with_hooks(hooks)
        .build()
    )
    async with running_client(app) as client:
        yield client


async def test_hooks_see_each_change_after_it_committed(database_url: str) -> None:
    recorder = Recorder()
    async with serve(database_url, recorder) as client:
        job = await run_to_end(client, "second_time_lucky")
        await recorder.wait_for(lambda: len(recorder.of(job["id"])) == 4)
        first = await run_to_end(client, "cached", {"n": 1})
        hit = await run_to_end(client, "cached", {"n": 1})
        await recorder.wait_for(lambda: len(recorder.of(hit["id"])) == 2)

    assert [hook for hook, _ in recorder.of(job["id"])] == [
        "started",
        "retrying",
        "started",
        "finished",
    ]
    # Each hook reads the job after the change committed (it may have moved on since).
    [retrying] = [j for hook, j in recorder.jobs if hook == "retrying"]
    assert retrying.error is not None
    assert retrying.error.message == "first attempt fails"
    assert recorder.of(job["id"])[-1] == ("finished", "completed")
    assert hit["cached_from"] == first["id"]
    assert recorder.of(hit["id"]) == [("cache_hit", "completed"), ("finished", "completed")]


async def test_a_canceled_pending_job_is_reported_finished(database_url: str) -> None:
    recorder = Recorder()
    async with serve(database_url, recorder) as client:
        response = await client.post(
            "/api/v1/tasks/flaky/$execute", json={"params": {"n": 1}, "delay": 3600}
        )
        job_id = response.json()["job_id"]
        assert (await client.post(f"/api/v1/jobs/{job_id}/$cancel")).status_code == 200
        await recorder.wait_for(lambda: bool(recorder.of(job_id)))

    assert recorder.of(job_id) == [("finished", "canceled")]


class Misbehaving(Recorder):
    """Raises when a job starts; hangs when one finishes."""

    async def on_job_started(self, job: JobRead) -> None:
        self.record("started", job)
        raise RuntimeError("hook bug")

    async def on_job_finished(self, job: JobRead) -> None:
        self.record("finished", job)
        await asyncio.Event().wait()


async def test_a_hook_that_raises_or_hangs_changes_nothing(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = Misbehaving()
    caplog.set_level(logging.ERROR, logger="app.jobs.hooks")
    async with serve(database_url, hooks, hook_timeout_seconds=0.2) as client:
        first = await run_to_end(client, "flaky", {"n": 1})
        second = await run_to_end(client, "flaky", {"n": 2})
        # Each hang is cut off: the second job's hooks still run after the first one's.
        await hooks.wait_for(lambda: len(hooks.of(second["id"])) == 2)
        failed = await wait_for_job(
            client,
            (await client.post("/api/v1/tasks/flaky/$execute", json={"params": {"n": -1}})).json()[
                "job_id"
            ],
        )

    assert (first["status"], first["attempts"], first["error"]) == ("completed", 1, None)
    assert (second["status"], failed["status"]) == ("completed", "failed")
    assert [hook for hook, _ in hooks.of(first["id"])] == ["started", "finished"]
    assert hooks.of(first["id"])[-1] == ("finished", "completed")
    messages = [record.getMessage() for record in caplog.records]
    assert "hook raised" in messages
    assert "hook timed out" in messages


def test_with_hooks_checks_the_object() -> None:
    builder = ServiceBuilder(info=ServiceInfo(display_name="x"))

    class Sync:
        def on_job_started(self, job: JobRead) -> None:
            pass

    with pytest.raises(TypeError, match="async"):
        builder.with_hooks(Sync())
    with pytest.raises(TypeError, match="at least one"):
        builder.with_hooks(object())
