"""Following jobs over HTTP in-process: task logs, progress, generator tasks, `?wait=`, and the
event stream of a finished job (live streaming is tested against a real server in tests/e2e)."""

import asyncio
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from app.jobs import live
from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory, build_app, running_client
from tests.helpers import (
    apoll_until,
    assert_problem,
    events_of,
    execute,
    get_json,
    log_messages,
    parse_sse,
    wait_for_job,
)

WAIT = 15.0
PLAIN_LOGGER = "tests.jobs.live_task"
PROBLEM_JSON = "application/problem+json"
UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@pytest.fixture
def plain_logger() -> Iterator[logging.Logger]:
    """A logger of the task author's own, at INFO (as `taskexec serve` configures the root)."""
    logger = logging.getLogger(PLAIN_LOGGER)
    saved = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield logger
    finally:
        logger.setLevel(saved)


@pytest.fixture
def no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only events may wake a waiter: the slow safety re-check is pushed out of reach."""
    monkeypatch.setattr(live, "RECHECK_SECONDS", 60.0)


AppFactory = Callable[..., tuple[FastAPI, AbstractAsyncContextManager[httpx.AsyncClient]]]


@pytest.fixture
def app_factory(database_url: str) -> AppFactory:
    """Like `client_factory`, but also hands out the app (for its state)."""

    def factory(**overrides: Any) -> tuple[FastAPI, AbstractAsyncContextManager[httpx.AsyncClient]]:
        app = build_app(database_url, **overrides)
        return app, running_client(app)

    return factory


# Logs


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("via", ["context", "logging"])
async def test_task_log_lines_are_served_in_order_and_paginated(
    client_factory: ClientFactory,
    registry: type[TaskRegistry],
    plain_logger: logging.Logger,
    kind: str,
    via: str,
) -> None:
    def emit(ctx: JobContext, n: int) -> None:
        logger = ctx.logger if via == "context" else plain_logger
        logger.info("line %d", n)

    async def talk_async(ctx: JobContext) -> None:
        for n in range(7):
            emit(ctx, n)
            await asyncio.sleep(0)

    def talk_sync(ctx: JobContext) -> None:
        for n in range(7):
            emit(ctx, n)

    registry.register_function("talk", talk_async if kind == "async" else talk_sync)
    async with client_factory() as client:
        job_id = await execute(client, "talk")
        assert (await wait_for_job(client, job_id))["status"] == "completed"
        whole = await get_json(client, f"/api/v1/jobs/{job_id}/logs")
        page = await get_json(client, f"/api/v1/jobs/{job_id}/logs", limit=3, offset=2)

    assert set(page) == {"items", "total", "limit", "offset"}
    assert (page["total"], page["limit"], page["offset"]) == (7, 3, 2)
    assert [item["message"] for item in page["items"]] == ["line 2", "line 3", "line 4"]
    assert [item["message"] for item in whole["items"]] == [f"line {n}" for n in range(7)]
    seqs = [item["seq"] for item in whole["items"]]
    assert seqs == sorted(seqs)
    expected_logger = "taskexec.task.talk" if via == "context" else PLAIN_LOGGER
    assert {(item["level"], item["logger"]) for item in whole["items"]} == {
        ("INFO", expected_logger)
    }
    assert set(whole["items"][0]) == {"seq", "created_at", "level", "logger", "message"}


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_logs_of_concurrent_jobs_never_mix(
    client_factory: ClientFactory,
    registry: type[TaskRegistry],
    plain_logger: logging.Logger,
    kind: str,
) -> None:
    async_barrier = asyncio.Barrier(2)
    thread_barrier = threading.Barrier(2)

    async def pair_async(tag: str, ctx: JobContext) -> None:
        for n in range(5):
            ctx.logger.info("%s %d", tag, n)
            plain_logger.info("%s plain %d", tag, n)
            # Both jobs are running: each line of one is logged between lines of the other.
            await asyncio.wait_for(async_barrier.wait(), WAIT)

    def pair_sync(tag: str, ctx: JobContext) -> None:
        for n in range(5):
            ctx.logger.info("%s %d", tag, n)
            plain_logger.info("%s plain %d", tag, n)
            thread_barrier.wait(WAIT)

    registry.register_function("pair", pair_async if kind == "async" else pair_sync)
    async with client_factory(max_concurrency=2) as client:
        first = await execute(client, "pair", {"tag": "first"})
        second = await execute(client, "pair", {"tag": "second"})
        for job_id in (first, second):
            assert (await wait_for_job(client, job_id))["status"] == "completed"
        logs = {job_id: await log_messages(client, job_id) for job_id in (first, second)}

    for job_id, tag in ((first, "first"), (second, "second")):
        expected = [line for n in range(5) for line in (f"{tag} {n}", f"{tag} plain {n}")]
        assert logs[job_id] == expected


async def test_framework_log_lines_are_not_captured(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def busy(ctx: JobContext) -> None:
        logging.getLogger("app.jobs.custom").warning("framework line")
        logging.getLogger("sqlalchemy.engine.custom").warning("driver line")
        logging.getLogger("asyncio").warning("loop line")
        ctx.logger.info("task line")

    registry.register_function("busy", busy)
    async with client_factory() as client:
        job_id = await execute(client, "busy")
        await wait_for_job(client, job_id)
        assert await log_messages(client, job_id) == ["task line"]


async def test_capture_leaves_stdout_alone(
    client_factory: ClientFactory,
    registry: type[TaskRegistry],
    plain_logger: logging.Logger,
    capfd: pytest.CaptureFixture[str],
) -> None:
    def chatty(ctx: JobContext) -> None:
        ctx.logger.info("context-marker")
        plain_logger.warning("plain-marker")
        sys.stdout.write("printed-marker\n")
        sys.stdout.flush()

    registry.register_function("chatty", chatty)
    async with client_factory() as client:
        job_id = await execute(client, "chatty")
        await wait_for_job(client, job_id)
        messages = await log_messages(client, job_id)

    out, _ = capfd.readouterr()
    assert messages == ["context-marker", "plain-marker"]
    assert "context-marker" not in out
    assert "plain-marker" not in out
    # What a task prints goes where it always went, and is not a log line.
    assert "printed-marker" in out


async def test_log_lines_over_the_cap_are_dropped_with_a_note(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def verbose(ctx: JobContext) -> None:
        for n in range(12):
            ctx.logger.info("line %d", n)

    registry.register_function("verbose", verbose)
    async with client_factory(max_log_lines=5) as client:
        job_id = await execute(client, "verbose")
        await wait_for_job(client, job_id)
        logs = await get_json(client, f"/api/v1/jobs/{job_id}/logs")
        events = await events_of(client, job_id)

    assert logs["total"] == 6
    messages = [item["message"] for item in logs["items"]]
    assert messages[:5] == [f"line {n}" for n in range(5)]
    note = logs["items"][5]
    assert note["level"] == "WARNING"
    assert "7" in note["message"]
    assert "truncated" in note["message"]
    truncated = [e for e in events if e["type"] == "log_truncated"]
    assert [e["data"] for e in truncated] == [
        {"dropped": 7, "kept": 5, "shortened": 0, "dropped_bytes": 44}
    ]
    assert events[-1]["type"] == "completed"


async def test_the_log_cap_holds_for_the_whole_job_across_retries(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def retried(ctx: JobContext) -> None:
        for n in range(4):
            ctx.logger.info("attempt %d line %d", ctx.attempt, n)
        if ctx.attempt == 1:
            raise ConnectionError("again")

    registry.register_function("retried", retried, retries=1, retry_backoff=0)
    async with client_factory(max_log_lines=5) as client:
        job_id = await execute(client, "retried")
        assert (await wait_for_job(client, job_id))["status"] == "completed"
        messages = await log_messages(client, job_id)
        events = await events_of(client, job_id)

    assert messages[:5] == [f"attempt 1 line {n}" for n in range(4)] + ["attempt 2 line 0"]
    assert len(messages) == 6
    assert [e["data"] for e in events if e["type"] == "log_truncated"] == [
        {"dropped": 3, "kept": 5, "shortened": 0, "dropped_bytes": 48}
    ]


async def test_logs_and_events_of_unknown_jobs_are_404(client: httpx.AsyncClient) -> None:
    for path in ("logs", "events"):
        assert_problem(await client.get(f"/api/v1/jobs/{UNKNOWN_ID}/{path}"), 404)
        assert_problem(await client.get(f"/api/v1/jobs/not-an-id/{path}"), 400)


# Progress and generator tasks


async def test_progress_updates_the_job_and_records_events(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    gates = [asyncio.Event(), asyncio.Event()]

    async def halfway(ctx: JobContext) -> str:
        ctx.progress(0.25)
        await asyncio.wait_for(gates[0].wait(), WAIT)
        ctx.progress(3, 4, message="three of four")
        await asyncio.wait_for(gates[1].wait(), WAIT)
        return "ok"

    registry.register_function("halfway", halfway)
    async with client_factory() as client:
        job_id = await execute(client, "halfway")

        async def progress_is(fraction: float, message: str | None) -> object:
            async def check() -> bool:
                job = await get_json(client, f"/api/v1/jobs/{job_id}")
                return (job["status"], job["progress"], job["progress_message"]) == (
                    "running",
                    fraction,
                    message,
                )

            return await apoll_until(check, within=WAIT, what=f"progress {fraction} {message!r}")

        await progress_is(0.25, None)
        gates[0].set()
        await progress_is(0.75, "three of four")
        gates[1].set()
        job = await wait_for_job(client, job_id)
        events = await events_of(client, job_id)

    assert (job["status"], job["progress"], job["progress_message"]) == (
        "completed",
        0.75,
        "three of four",
    )
    assert [e["data"] for e in events if e["type"] == "progress"] == [
        {"fraction": 0.25, "message": None},
        {"fraction": 0.75, "message": "three of four"},
    ]


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_generator_tasks_report_each_item_and_return_the_list(
    client_factory: ClientFactory, registry: type[TaskRegistry], kind: str
) -> None:
    # Each item after the first waits until the previous one was seen as progress.
    async_gates = [asyncio.Event() for _ in range(3)]
    thread_gates = [threading.Event() for _ in range(3)]

    async def produce_async() -> AsyncIterator[dict[str, int]]:
        for n in range(3):
            if n:
                await asyncio.wait_for(async_gates[n].wait(), WAIT)
            yield {"n": n}

    def produce_sync() -> Iterator[dict[str, int]]:
        for n in range(3):
            if n:
                assert thread_gates[n].wait(WAIT)
            yield {"n": n}

    registry.register_function("produce", produce_async if kind == "async" else produce_sync)
    async with client_factory() as client:
        job_id = await execute(client, "produce")
        for n in range(3):

            async def seen(n: int = n) -> bool:
                progress = [
                    e["data"] for e in await events_of(client, job_id) if e["type"] == "progress"
                ]
                return bool(progress) and progress[-1].get("item") == {"n": n}

            await apoll_until(seen, within=WAIT, what=f"item {n} as progress")
            job = await get_json(client, f"/api/v1/jobs/{job_id}")
            assert job["progress_message"] == f"{n + 1} items"
            if n < 2:
                async_gates[n + 1].set()
                thread_gates[n + 1].set()
        job = await wait_for_job(client, job_id)
        artifact = await get_json(client, f"/api/v1/artifacts/{job['result']}")
        events = await events_of(client, job_id)

    assert job["status"] == "completed"
    assert job["progress_message"] == "3 items"
    assert artifact["data"]["result"] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [e["data"] for e in events if e["type"] == "progress"] == [
        {"fraction": None, "message": f"{n + 1} items", "item": {"n": n}} for n in range(3)
    ]


# Waiting


async def test_execute_with_wait_answers_200_with_the_finished_job_and_artifact(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def double(n: int) -> int:
        return 2 * n

    registry.register_function("double", double)
    async with client_factory() as client:
        response = await client.post(
            "/api/v1/tasks/double/$execute", params={"wait": 5}, json={"params": {"n": 2}}
        )

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"job_id", "message", "job", "artifact"}
    job_id = body["job_id"]
    assert response.headers["location"] == f"/api/v1/jobs/{job_id}"
    assert job_id in body["message"]
    job = body["job"]
    assert (job["id"], job["status"], job["task_name"]) == (job_id, "completed", "double")
    assert [attempt["status"] for attempt in job["attempt_history"]] == ["completed"]
    artifact = body["artifact"]
    assert artifact["id"] == job["result"]
    assert artifact["job_id"] == job_id
    assert artifact["data"] == {
        "task_name": "double",
        "params": {"n": 2},
        "result": 4,
        "error": None,
    }


async def test_execute_with_wait_shows_a_failure_inline(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def refuse() -> None:
        raise PermissionError("not today")

    registry.register_function("refuse", refuse)
    async with client_factory() as client:
        response = await client.post("/api/v1/tasks/refuse/$execute", params={"wait": 5})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job"]["status"] == "failed"
    assert body["job"]["error"] == {"type": "PermissionError", "message": "not today"}
    error = body["artifact"]["data"]["error"]
    assert (error["type"], error["message"]) == ("PermissionError", "not today")


async def test_execute_with_a_short_wait_on_a_slow_task_answers_202(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    release = asyncio.Event()

    async def slow() -> str:
        await asyncio.wait_for(release.wait(), WAIT)
        return "late"

    registry.register_function("slow", slow)
    async with client_factory() as client:
        response = await client.post("/api/v1/tasks/slow/$execute", params={"wait": 0.2})
        release.set()
        assert response.status_code == 202, response.text
        body = response.json()
        assert set(body) == {"job_id", "message"}
        assert response.headers["location"] == f"/api/v1/jobs/{body['job_id']}"
        assert (await wait_for_job(client, body["job_id"]))["status"] == "completed"


async def test_execute_with_a_wait_over_the_limit_is_400_and_queues_nothing(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def quick() -> None:
        return None

    registry.register_function("quick", quick)
    async with client_factory(max_wait_seconds=2) as client:
        response = await client.post("/api/v1/tasks/quick/$execute", params={"wait": 3})
        jobs = await get_json(client, "/api/v1/jobs")

    body = assert_problem(response, 400)
    assert "TASKEXEC_MAX_WAIT_SECONDS" in body["detail"]
    assert jobs["total"] == 0


async def test_get_with_wait_answers_once_the_job_finishes(
    app_factory: AppFactory, registry: type[TaskRegistry], no_recheck: None
) -> None:
    release = asyncio.Event()

    async def gated() -> str:
        await asyncio.wait_for(release.wait(), WAIT)
        return "released"

    registry.register_function("gated", gated)
    app, running = app_factory()
    async with running as client:
        job_id = await execute(client, "gated")
        request = asyncio.create_task(client.get(f"/api/v1/jobs/{job_id}", params={"wait": 30}))
        bus = app.state.scheduler.bus

        async def waiting() -> bool:
            return bool(bus.subscriber_count >= 1)

        await apoll_until(waiting, within=WAIT, what="the request to wait on the job")
        assert not request.done()
        release.set()
        # Woken by the job's own events: the 30 s wait and the slow re-check are far away.
        response = await asyncio.wait_for(request, WAIT)

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "completed"
    assert job["result"] is not None
    assert len(job["attempt_history"]) == 1


async def test_get_with_wait_answers_with_the_current_state_when_time_is_up(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def idle() -> None:
        return None

    registry.register_function("idle", idle)
    async with client_factory(run_worker=False) as client:
        job_id = await execute(client, "idle")
        response = await client.get(f"/api/v1/jobs/{job_id}", params={"wait": 0.3})
        missing = await client.get(f"/api/v1/jobs/{UNKNOWN_ID}", params={"wait": 0.3})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    assert_problem(missing, 404)


async def test_get_with_a_wait_over_the_limit_is_400(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def idle() -> None:
        return None

    registry.register_function("idle", idle)
    async with client_factory(max_wait_seconds=2, run_worker=False) as client:
        job_id = await execute(client, "idle")
        response = await client.get(f"/api/v1/jobs/{job_id}", params={"wait": 2.5})
        allowed = await client.get(f"/api/v1/jobs/{job_id}", params={"wait": 0.1})

    body = assert_problem(response, 400)
    assert "TASKEXEC_MAX_WAIT_SECONDS" in body["detail"]
    assert allowed.status_code == 200


async def test_waiting_does_not_poll_the_database(
    app_factory: AppFactory, registry: type[TaskRegistry]
) -> None:
    async def idle() -> None:
        return None

    registry.register_function("idle", idle)
    app, running = app_factory(run_worker=False)
    async with running as client:
        job_id = await execute(client, "idle")
        engine = app.state.database.engine.sync_engine
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(str(args[2]))

        event.listen(engine, "before_cursor_execute", count)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            response = await client.get(f"/api/v1/jobs/{job_id}", params={"wait": 1.5})
            waited = loop.time() - started
        finally:
            event.remove(engine, "before_cursor_execute", count)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    assert waited >= 1.4, "the request did not wait"
    # A look when the wait starts and when it ends; polling would be dozens.
    assert 1 <= len(statements) <= 10, statements


# The event stream of a finished job (in-process responses are read whole)


async def test_the_stream_of_a_finished_job_replays_every_event_and_ends(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def steps(ctx: JobContext) -> None:
        ctx.logger.info("one")
        ctx.progress(0.5)
        await asyncio.sleep(0)
        ctx.logger.info("two")

    registry.register_function("steps", steps)
    async with client_factory() as client:
        job_id = await execute(client, "steps")
        await wait_for_job(client, job_id)
        stored = await events_of(client, job_id)
        response = await asyncio.wait_for(client.get(f"/api/v1/jobs/{job_id}/$stream"), WAIT)
        lower = await asyncio.wait_for(
            client.get(f"/api/v1/jobs/{job_id.lower()}/$stream", headers={"Last-Event-ID": "2"}),
            WAIT,
        )
        after = await asyncio.wait_for(
            client.get(f"/api/v1/jobs/{job_id}/$stream", params={"after": 3}), WAIT
        )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    assert [int(e["id"]) for e in events] == list(range(1, len(stored) + 1))
    assert [e["event"] for e in events] == [e["type"] for e in stored]
    assert [e["data"] for e in events] == stored
    assert events[-1]["event"] == "completed"
    assert [int(e["id"]) for e in parse_sse(lower.text)] == list(range(3, len(stored) + 1))
    assert [int(e["id"]) for e in parse_sse(after.text)] == list(range(4, len(stored) + 1))


async def test_the_stream_of_an_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    response = await asyncio.wait_for(client.get(f"/api/v1/jobs/{UNKNOWN_ID}/$stream"), WAIT)
    assert_problem(response, 404)


async def test_a_bad_last_event_id_is_400(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def quick() -> None:
        return None

    registry.register_function("quick", quick)
    async with client_factory() as client:
        job_id = await execute(client, "quick")
        await wait_for_job(client, job_id)
        response = await asyncio.wait_for(
            client.get(f"/api/v1/jobs/{job_id}/$stream", headers={"Last-Event-ID": "x"}), WAIT
        )
    assert_problem(response, 400)
