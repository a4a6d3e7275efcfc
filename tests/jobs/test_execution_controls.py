"""Execution controls end to end in one process: retries with backoff, timeouts, cancellation,
priorities and delays, seen through the HTTP API and the job's stored attempt history."""

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory, build_app, running_client
from tests.helpers import apoll_until, wait_for_job

WAIT = 10.0
# Quick claim loop, so the gaps between attempts come from the backoff, not from polling.
FAST_POLL = 0.02
BACKOFF = 0.1


async def _submit(client: httpx.AsyncClient, task: str, body: dict[str, Any] | None = None) -> str:
    response = await client.post(f"/api/v1/tasks/{task}/$execute", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def _get(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def _artifact(client: httpx.AsyncClient, artifact_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/artifacts/{artifact_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def _stays(client: httpx.AsyncClient, job_id: str, status: str, seconds: float) -> None:
    """Assert the job keeps `status` throughout a short observation window."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        job = await _get(client, job_id)
        assert job["status"] == status, job
        await asyncio.sleep(0.02)


async def _thread_event(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, WAIT), "the task thread never got there"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _history(job: dict[str, Any]) -> list[tuple[int, str, dict[str, str] | None]]:
    return [(a["attempt"], a["status"], a["error"]) for a in job["attempt_history"]]


# Retries -------------------------------------------------------------------------------------


async def test_retries_with_exponential_backoff_until_success(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def flaky(ctx: JobContext) -> str:
        if ctx.attempt < 3:
            raise ValueError(f"attempt {ctx.attempt} failed")
        return f"succeeded on attempt {ctx.attempt}"

    registry.register_function("flaky", flaky, retries=2, retry_backoff=BACKOFF)
    async with client_factory(poll_interval=FAST_POLL) as client:
        job = await wait_for_job(client, await _submit(client, "flaky"))

        assert job["status"] == "completed", job
        assert (job["attempts"], job["max_attempts"]) == (3, 3)
        assert job["error"] is None
        assert _history(job) == [
            (1, "failed", {"type": "ValueError", "message": "attempt 1 failed"}),
            (2, "failed", {"type": "ValueError", "message": "attempt 2 failed"}),
            (3, "completed", None),
        ]
        attempts = job["attempt_history"]
        for attempt in attempts:
            assert attempt["worker_id"]
            assert _at(attempt["started_at"]) <= _at(attempt["finished_at"])
        assert attempts[-1]["started_at"] == job["started_at"]
        assert attempts[-1]["finished_at"] == job["finished_at"]
        # Each wait is `retry_backoff * 2**(n-1)`, shortened at random by up to half.
        first_wait = _at(attempts[1]["started_at"]) - _at(attempts[0]["finished_at"])
        second_wait = _at(attempts[2]["started_at"]) - _at(attempts[1]["finished_at"])
        assert first_wait >= timedelta(seconds=BACKOFF / 2)
        assert second_wait >= timedelta(seconds=BACKOFF)

        data = await _artifact(client, job["result"])
        assert data["result"] == "succeeded on attempt 3"
        assert data["error"] is None


async def test_exhausted_retries_fail_with_the_last_attempts_error(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def always_fails(ctx: JobContext) -> None:
        raise ValueError(f"failure {ctx.attempt}")

    registry.register_function("always_fails", always_fails, retries=2, retry_backoff=0)
    async with client_factory() as client:
        job = await wait_for_job(client, await _submit(client, "always_fails"))
        assert job["status"] == "failed", job
        assert job["attempts"] == 3
        assert job["error"] == {"type": "ValueError", "message": "failure 3"}
        assert [status for _, status, _ in _history(job)] == ["failed"] * 3
        assert [error for _, _, error in _history(job)] == [
            {"type": "ValueError", "message": f"failure {n}"} for n in (1, 2, 3)
        ]
        data = await _artifact(client, job["result"])
        assert data["result"] is None
        assert data["error"]["type"] == "ValueError"
        assert data["error"]["message"] == "failure 3"
        assert "failure 3" in data["error"]["traceback"]
        # One artifact: the final attempt's.
        listed = (await client.get("/api/v1/artifacts", params={"job_id": job["id"]})).json()
        assert listed["total"] == 1


async def test_retry_on_limits_which_errors_are_retried(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def value_error() -> None:
        raise ValueError("not retryable")

    async def key_error_once(ctx: JobContext) -> int:
        if ctx.attempt == 1:
            raise KeyError("retryable")
        return ctx.attempt

    options: dict[str, Any] = {"retries": 3, "retry_backoff": 0, "retry_on": (KeyError,)}
    registry.register_function("value_error", value_error, **options)
    registry.register_function("key_error_once", key_error_once, **options)
    async with client_factory() as client:
        info = (await client.get("/api/v1/tasks/value_error")).json()
        assert info["options"]["retry_on"] == ["KeyError"]

        not_retried = await wait_for_job(client, await _submit(client, "value_error"))
        assert not_retried["status"] == "failed", not_retried
        assert (not_retried["attempts"], not_retried["max_attempts"]) == (1, 4)
        assert not_retried["error"]["type"] == "ValueError"

        retried = await wait_for_job(client, await _submit(client, "key_error_once"))
        assert retried["status"] == "completed", retried
        assert retried["attempts"] == 2
        assert _history(retried)[0][2] == {"type": "KeyError", "message": "'retryable'"}


async def test_retries_in_the_request_override_the_task(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def third_time(ctx: JobContext) -> int:
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt}")
        return ctx.attempt

    async def never_works() -> None:
        raise RuntimeError("nope")

    registry.register_function("third_time", third_time, retry_backoff=0.01)
    registry.register_function("never_works", never_works, retries=5, retry_backoff=0.01)
    async with client_factory() as client:
        default = await wait_for_job(client, await _submit(client, "third_time"))
        assert (default["status"], default["attempts"]) == ("failed", 1)

        more = await wait_for_job(client, await _submit(client, "third_time", {"retries": 2}))
        assert (more["status"], more["attempts"], more["max_attempts"]) == ("completed", 3, 3)

        none = await wait_for_job(client, await _submit(client, "never_works", {"retries": 0}))
        assert (none["status"], none["attempts"], none["max_attempts"]) == ("failed", 1, 1)


# Timeouts ------------------------------------------------------------------------------------


async def test_async_task_over_its_timeout_is_cancelled_and_fails(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    never = asyncio.Event()
    interrupted = asyncio.Event()

    async def hangs() -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            interrupted.set()
            raise

    registry.register_function("hangs", hangs, timeout=0.2)
    async with client_factory() as client:
        job = await wait_for_job(client, await _submit(client, "hangs"))
        assert job["status"] == "failed", job
        assert job["timeout"] == 0.2
        assert job["error"]["type"] == "JobTimeoutError"
        assert "timed out after 0.2 s" in job["error"]["message"]
        assert "the coroutine was cancelled" in job["error"]["message"]
        assert interrupted.is_set()
        assert _history(job) == [(1, "failed", job["error"])]
        data = await _artifact(client, job["result"])
        assert data["error"]["type"] == "JobTimeoutError"
        assert data["result"] is None


async def test_timeout_in_the_request_overrides_the_task(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    never = asyncio.Event()

    async def hangs() -> None:
        await never.wait()

    async def takes_a_while() -> str:
        await asyncio.sleep(0.3)  # the task's own work, longer than its default timeout
        return "done"

    registry.register_function("hangs", hangs)
    registry.register_function("takes_a_while", takes_a_while, timeout=0.05)
    async with client_factory() as client:
        limited = await wait_for_job(client, await _submit(client, "hangs", {"timeout": 0.2}))
        assert limited["status"] == "failed", limited
        assert limited["timeout"] == 0.2
        assert limited["error"]["type"] == "JobTimeoutError"

        default = await wait_for_job(client, await _submit(client, "takes_a_while"))
        assert default["status"] == "failed", default
        assert default["error"]["type"] == "JobTimeoutError"

        longer = await _submit(client, "takes_a_while", {"timeout": 30})
        extended = await wait_for_job(client, longer)
        assert extended["status"] == "completed", extended
        assert extended["timeout"] == 30


async def test_timed_out_thread_fails_at_once_but_keeps_its_slot(
    database_url: str, registry: type[TaskRegistry]
) -> None:
    release = threading.Event()
    started = threading.Event()
    returned = threading.Event()

    def stuck() -> str:
        started.set()
        release.wait(WAIT * 3)
        returned.set()
        return "too late"

    async def quick() -> str:
        return "quick"

    registry.register_function("stuck", stuck, timeout=0.2)
    registry.register_function("quick", quick)
    app = build_app(database_url, max_concurrency=1, poll_interval=0.05)
    async with running_client(app) as client:
        try:
            stuck_id = await _submit(client, "stuck")
            await _thread_event(started)
            quick_id = await _submit(client, "quick")

            timed_out = await wait_for_job(client, stuck_id)
            assert not returned.is_set()
            assert timed_out["status"] == "failed", timed_out
            assert timed_out["error"]["type"] == "JobTimeoutError"
            assert "keeps its concurrency slot" in timed_out["error"]["message"]

            # The thread still runs, so the single slot is still taken.
            await _stays(client, quick_id, "pending", 0.5)
            assert app.state.worker.running_count == 1
        finally:
            release.set()
        done = await wait_for_job(client, quick_id)
        assert done["status"] == "completed", done
        assert returned.is_set()

        # The late return changes nothing about the failed job.
        after = await _get(client, stuck_id)
        assert after["status"] == "failed"
        assert after["finished_at"] == timed_out["finished_at"]
        assert after["result"] == timed_out["result"]
        data = await _artifact(client, after["result"])
        assert data["result"] is None
        assert data["error"]["type"] == "JobTimeoutError"


# Cancellation --------------------------------------------------------------------------------


async def test_cancel_pending_job_ends_it_without_running_it(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    gate = asyncio.Event()
    blocker_started = asyncio.Event()
    ran: list[str] = []

    async def blocker() -> None:
        blocker_started.set()
        await gate.wait()

    async def record(label: str) -> str:
        ran.append(label)
        return label

    registry.register_function("blocker", blocker)
    registry.register_function("record", record)
    async with client_factory(max_concurrency=1, poll_interval=0.05) as client:
        try:
            blocker_id = await _submit(client, "blocker")
            await asyncio.wait_for(blocker_started.wait(), WAIT)
            pending_id = await _submit(client, "record", {"params": {"label": "canceled"}})

            response = await client.post(f"/api/v1/jobs/{pending_id}/$cancel")
            assert response.status_code == 200, response.text
            canceled = response.json()
            assert canceled["status"] == "canceled"
            assert canceled["cancel_requested"] is True
            assert canceled["started_at"] is None
            assert canceled["finished_at"] is not None
            assert canceled["error"]["type"] == "JobCancelledError"
        finally:
            gate.set()
        # A later job of the same task runs after the blocker; the canceled one never does.
        later_id = await _submit(client, "record", {"params": {"label": "later"}})
        assert (await wait_for_job(client, later_id))["status"] == "completed"
        assert (await wait_for_job(client, blocker_id))["status"] == "completed"
        assert ran == ["later"]
        job = await _get(client, pending_id)
        assert job["status"] == "canceled"
        assert job["attempts"] == 0
        assert job["attempt_history"] == []


async def test_cancel_running_async_task_stops_it_with_an_artifact(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    started = asyncio.Event()
    never = asyncio.Event()
    interrupted = asyncio.Event()

    async def waits_forever() -> None:
        started.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            interrupted.set()
            raise

    registry.register_function("waits_forever", waits_forever)
    async with client_factory() as client:
        job_id = await _submit(client, "waits_forever")
        await asyncio.wait_for(started.wait(), WAIT)

        response = await client.post(f"/api/v1/jobs/{job_id}/$cancel")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "canceling"
        job = await wait_for_job(client, job_id, within=WAIT)
        assert job["status"] == "canceled", job
        assert interrupted.is_set()
        assert job["error"]["type"] == "JobCancelledError"
        assert _history(job) == [(1, "canceled", job["error"])]
        data = await _artifact(client, job["result"])
        assert data["result"] is None
        assert data["error"]["type"] == "JobCancelledError"


@pytest.mark.parametrize("ending", ["returns", "raises"])
async def test_cancel_running_thread_is_canceling_until_the_task_ends(
    client_factory: ClientFactory, registry: type[TaskRegistry], ending: str
) -> None:
    started = threading.Event()
    release = threading.Event()
    contexts: list[JobContext] = []
    seen_after_release: list[bool] = []

    def stubborn(ctx: JobContext) -> str:
        contexts.append(ctx)
        started.set()
        release.wait(WAIT * 3)
        seen_after_release.append(ctx.cancel_requested)
        if ending == "raises":
            ctx.raise_if_cancelled()
        return "finished anyway"

    registry.register_function("stubborn", stubborn)
    async with client_factory() as client:
        try:
            job_id = await _submit(client, "stubborn")
            await _thread_event(started)

            response = await client.post(f"/api/v1/jobs/{job_id}/$cancel")
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "canceling"
            assert response.json()["cancel_requested"] is True
            # The flag reaches the task while its thread is still blocked.
            await apoll_until(
                lambda: contexts[0].cancel_requested, what="the task to see the cancel"
            )
            await _stays(client, job_id, "canceling", 0.2)
        finally:
            release.set()

        job = await wait_for_job(client, job_id)
        assert job["status"] == "canceled", job
        assert seen_after_release == [True]
        assert job["error"]["type"] == "JobCancelledError"
        assert _history(job) == [(1, "canceled", job["error"])]
        data = await _artifact(client, job["result"])
        assert data["error"]["type"] == "JobCancelledError"
        if ending == "returns":
            # What the task produced after all is kept.
            assert data["result"] == "finished anyway"
            assert "with a result" in job["error"]["message"]
        else:
            assert data["result"] is None
            assert "raise_if_cancelled" in data["error"]["traceback"]


async def test_cancel_of_a_finished_job_conflicts(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def done() -> str:
        return "done"

    registry.register_function("done", done)
    async with client_factory() as client:
        job_id = await _submit(client, "done")
        finished = await wait_for_job(client, job_id)
        assert finished["status"] == "completed"

        response = await client.post(f"/api/v1/jobs/{job_id}/$cancel")
        assert response.status_code == 409, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "conflict"
        assert "completed" in problem["detail"]
        assert await _get(client, job_id) == finished


# Priorities and delays -----------------------------------------------------------------------


async def test_higher_priority_starts_first_and_equals_in_order(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    gate = asyncio.Event()
    blocker_started = asyncio.Event()
    order: list[str] = []

    async def blocker() -> None:
        blocker_started.set()
        await gate.wait()

    async def ordered(label: str) -> str:
        order.append(label)
        return label

    registry.register_function("blocker", blocker)
    registry.register_function("ordered", ordered)
    registry.register_function("favoured", ordered, priority=5)
    async with client_factory(max_concurrency=1, poll_interval=0.05) as client:
        try:
            await _submit(client, "blocker")
            await asyncio.wait_for(blocker_started.wait(), WAIT)
            submitted = [
                ("low", "ordered", -5),
                ("equal-1", "ordered", None),
                ("default-5", "favoured", None),
                ("high", "ordered", 10),
                ("equal-2", "ordered", None),
                ("equal-3", "ordered", 0),
            ]
            ids: dict[str, str] = {}
            for label, task, priority in submitted:
                body: dict[str, Any] = {"params": {"label": label}}
                if priority is not None:
                    body["priority"] = priority
                ids[label] = await _submit(client, task, body)
        finally:
            gate.set()
        jobs = {label: await wait_for_job(client, job_id) for label, job_id in ids.items()}

    expected = ["high", "default-5", "equal-1", "equal-2", "equal-3", "low"]
    assert order == expected
    assert all(job["status"] == "completed" for job in jobs.values())
    assert jobs["default-5"]["priority"] == 5
    started = [_at(jobs[label]["started_at"]) for label in expected]
    assert started == sorted(started)
    assert len(set(started)) == len(started)


async def test_delayed_and_scheduled_jobs_do_not_start_early(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def quick(label: str) -> str:
        return label

    registry.register_function("quick", quick)
    async with client_factory(poll_interval=0.05) as client:
        delayed_id = await _submit(client, "quick", {"params": {"label": "d"}, "delay": 0.5})
        run_at = datetime.now(UTC) + timedelta(seconds=0.5)
        scheduled_id = await _submit(
            client, "quick", {"params": {"label": "s"}, "run_at": run_at.isoformat()}
        )
        now_id = await _submit(client, "quick", {"params": {"label": "n"}})
        delayed = await wait_for_job(client, delayed_id)
        scheduled = await wait_for_job(client, scheduled_id)
        immediate = await wait_for_job(client, now_id)

    for job in (delayed, scheduled, immediate):
        assert job["status"] == "completed", job
    assert _at(delayed["run_at"]) - _at(delayed["created_at"]) == timedelta(seconds=0.5)
    assert _at(scheduled["run_at"]) == run_at
    for job in (delayed, scheduled):
        assert _at(job["started_at"]) >= _at(job["run_at"])
        # Queued later but due sooner, the plain job went first.
        assert _at(job["started_at"]) > _at(immediate["started_at"])
