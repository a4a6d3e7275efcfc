"""run_task when task code misbehaves: `sys.exit()` and other BaseExceptions, exceptions that
cannot be printed, results and errors over their byte bounds. Every one is an outcome."""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.jobs.bounds import Bounds
from app.jobs.context import JobContext
from app.jobs.models import JobStatus
from app.jobs.runner import (
    ResultTooLargeError,
    error_record,
    run_task,
    runs_in_process,
    to_json_result,
)
from app.tasks.registry import TaskRegistry
from tests.faulty import HOWS, Unprintable, stop, stop_in_process, unprintable_sync
from tests.jobs.helpers import no_session, run, unused_injectables

SMALL = Bounds(
    max_result_bytes=1000,
    max_error_message_bytes=300,
    max_traceback_bytes=2000,
    max_log_line_bytes=400,
    max_log_bytes=4000,
)


def _task_of_kind(kind: str, body: Callable[[], Any]) -> Callable[..., Any]:
    """A task of `kind` (async, sync, generator, async_generator) that returns `body()`."""

    async def async_task() -> Any:
        await asyncio.sleep(0)
        return body()

    def sync_task() -> Any:
        return body()

    def generator_task() -> Iterator[Any]:
        yield body()

    async def async_generator_task() -> AsyncIterator[Any]:
        yield body()

    kinds: dict[str, Callable[..., Any]] = {
        "async": async_task,
        "sync": sync_task,
        "generator": generator_task,
        "async_generator": async_generator_task,
    }
    return kinds[kind]


KINDS = ["async", "sync", "generator", "async_generator"]


@pytest.mark.parametrize("how", list(HOWS))
@pytest.mark.parametrize("kind", KINDS)
async def test_base_exceptions_of_a_task_fail_its_attempt(
    registry: type[TaskRegistry],
    context: JobContext,
    executor: ThreadPoolExecutor,
    kind: str,
    how: str,
) -> None:
    definition = registry.register_function("stop", _task_of_kind(kind, lambda: stop(how)))

    outcome = await run(definition, {}, context, executor)

    assert outcome.status is JobStatus.FAILED
    assert outcome.error is not None
    assert outcome.error["type"] == HOWS[how]
    assert HOWS[how] in outcome.error["traceback"]
    assert type(outcome.exception).__name__ == HOWS[how]


async def test_sys_exit_keeps_its_code_as_the_message(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor
) -> None:
    definition = registry.register_function("leave", lambda: stop("sys_exit"))

    outcome = await run(definition, {}, context, executor)

    assert outcome.summary == {"type": "SystemExit", "message": "3"}


async def test_a_cancellation_from_outside_still_propagates(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor
) -> None:
    started = asyncio.Event()

    async def waits() -> None:
        started.set()
        await asyncio.sleep(30)

    definition = registry.register_function("waits", waits)
    attempt = asyncio.create_task(run(definition, {}, context, executor))
    await asyncio.wait_for(started.wait(), 10)
    attempt.cancel()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(attempt, 10)


def test_an_exception_that_cannot_be_printed_gets_a_placeholder() -> None:
    try:
        unprintable_sync()
    except Unprintable as exc:
        record = error_record(exc)

    assert record["type"] == "Unprintable"
    assert record["message"] == "<unprintable Unprintable: __str__ raised RuntimeError>"
    assert "unprintable_sync" in record["traceback"]
    assert "Unprintable" in record["traceback"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_task_raising_an_unprintable_exception_fails_at_once(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor, kind: str
) -> None:
    definition = registry.register_function("odd", _task_of_kind(kind, unprintable_sync))

    outcome = await asyncio.wait_for(run(definition, {}, context, executor), 10)

    assert outcome.status is JobStatus.FAILED
    assert outcome.summary == {
        "type": "Unprintable",
        "message": "<unprintable Unprintable: __str__ raised RuntimeError>",
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_a_result_over_the_bound_fails_with_its_size_and_the_limit(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor, kind: str
) -> None:
    definition = registry.register_function("big", _task_of_kind(kind, lambda: "x" * 2000))

    outcome = await run(definition, {}, context, executor, bounds=SMALL)

    assert outcome.status is JobStatus.FAILED
    assert isinstance(outcome.exception, ResultTooLargeError)
    assert outcome.error is not None
    assert outcome.error["type"] == "ResultTooLargeError"
    size = 2002 if kind in ("async", "sync") else 2004  # a generator's result is a list
    assert f"{size} bytes" in outcome.error["message"]
    assert "limit of 1000 bytes" in outcome.error["message"]
    assert outcome.result is None


@pytest.mark.parametrize("kind", KINDS)
async def test_a_result_within_the_bound_is_kept(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor, kind: str
) -> None:
    definition = registry.register_function("fits", _task_of_kind(kind, lambda: "y" * 900))

    outcome = await run(definition, {}, context, executor, bounds=SMALL)

    assert outcome.status is JobStatus.COMPLETED
    assert outcome.result in ("y" * 900, ["y" * 900])


def test_to_json_result_measures_the_json_not_the_python_value() -> None:
    # {"a":"é…é"}: 8 bytes of syntax and 2 bytes per "é".
    assert to_json_result({"a": "é" * 10}, max_bytes=28) == {"a": "é" * 10}
    with pytest.raises(ResultTooLargeError, match="30 bytes of JSON, over the limit of 28"):
        to_json_result({"a": "é" * 11}, max_bytes=28)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_huge_error_message_and_traceback_are_cut_to_their_bounds(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor, kind: str
) -> None:
    message = "m" * (20 * 1024 * 1024)

    def fail() -> None:
        raise ValueError(message)

    definition = registry.register_function("loud", _task_of_kind(kind, fail))

    outcome = await run(definition, {}, context, executor, bounds=SMALL)

    assert outcome.error is not None
    shown, traceback = outcome.error["message"], outcome.error["traceback"]
    assert len(shown.encode()) <= 300
    assert shown.startswith("m" * 100)
    assert shown.endswith(f"… [truncated {len(message) - len(shown.split('…')[0])} bytes]")
    assert len(traceback.encode()) <= 2000
    assert traceback.startswith("Traceback (most recent call last):")
    assert "… [truncated " in traceback
    assert traceback.rstrip().endswith("m" * 100)


async def test_a_sync_task_in_a_thread_or_a_process_by_default(
    registry: type[TaskRegistry], context: JobContext
) -> None:
    def nested() -> None:
        return None

    def injected(ctx: JobContext) -> None:
        return None

    async def on_loop() -> None:
        return None

    plain = registry.register_function("plain", stop_in_process)
    chosen = registry.register_function("chosen", stop_in_process, executor="thread")
    local = registry.register_function("local", nested)
    with_ctx = registry.register_function("with_ctx", injected)
    coroutine = registry.register_function("coroutine", on_loop)

    assert not runs_in_process(plain)
    assert runs_in_process(plain, "process")
    assert not runs_in_process(chosen, "process")
    # A closure cannot be imported by a child, nor can injected values cross to one.
    assert not runs_in_process(local, "process")
    assert not runs_in_process(with_ctx, "process")
    assert not runs_in_process(coroutine, "process")


async def test_the_process_default_runs_a_sync_task_in_a_child(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor
) -> None:
    definition = registry.register_function("leaves", stop_in_process)

    outcome = await run_task(
        definition,
        {"how": "sys_exit"},
        context,
        unused_injectables(),
        no_session,
        executor,
        default_executor="process",
    )

    assert outcome.summary == {"type": "SystemExit", "message": "3"}
    # The child's own traceback: the task ran there, not in this process's thread.
    assert outcome.error is not None
    assert "run_task" not in outcome.error["traceback"]
