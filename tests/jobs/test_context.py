"""JobContext: identity, progress reporting and cancellation, from the loop and from threads."""

import asyncio
import logging
import threading

import pytest

from app.jobs.context import JobCancelledError, JobContext, ProgressUpdate


def make_context(updates: list[ProgressUpdate] | None = None) -> JobContext:
    return JobContext(
        job_id="01J0000000000000000000000A",
        task_name="crunch",
        attempt=2,
        max_attempts=3,
        params={"n": 1},
        on_progress=None if updates is None else updates.append,
    )


def test_knows_its_job() -> None:
    context = make_context()

    assert context.job_id == "01J0000000000000000000000A"
    assert context.task_name == "crunch"
    assert (context.attempt, context.max_attempts) == (2, 3)
    assert context.params == {"n": 1}


def test_logger_tags_records_with_the_job(caplog: pytest.LogCaptureFixture) -> None:
    context = make_context()

    with caplog.at_level(logging.INFO, logger="taskexec.task.crunch"):
        context.logger.info("working")

    [record] = caplog.records
    assert record.name == "taskexec.task.crunch"
    assert record.job_id == "01J0000000000000000000000A"  # type: ignore[attr-defined]
    assert record.attempt == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("current", "total", "message", "expected"),
    [
        (0.25, None, None, ProgressUpdate(0.25, None)),
        (3, 4, "3 of 4", ProgressUpdate(0.75, "3 of 4")),
        (10, 4, None, ProgressUpdate(1.0, None)),
        (-1, None, None, ProgressUpdate(0.0, None)),
        (1.5, None, None, ProgressUpdate(1.0, None)),
        (0, 10, "starting", ProgressUpdate(0.0, "starting")),
    ],
)
def test_progress_is_a_clamped_fraction(
    current: float, total: float | None, message: str | None, expected: ProgressUpdate
) -> None:
    updates: list[ProgressUpdate] = []

    make_context(updates).progress(current, total, message=message)

    assert updates == [expected]


def test_progress_without_a_sink_is_harmless() -> None:
    make_context().progress(0.5, message="nobody listens")


def test_cancellation_flag_and_raise_if_cancelled() -> None:
    context = make_context()
    context.raise_if_cancelled()
    assert context.cancel_requested is False

    context.request_cancel()

    assert context.cancel_requested is True
    with pytest.raises(JobCancelledError, match="01J0000000000000000000000A"):
        context.raise_if_cancelled()


async def test_cancellation_is_seen_by_a_thread_waiting_on_it() -> None:
    context = make_context()
    started = threading.Event()
    seen: list[bool] = []

    def poll() -> None:
        started.set()
        for _ in range(10_000):
            if context.cancel_requested:
                break
            threading.Event().wait(0.001)
        seen.append(context.cancel_requested)

    thread_done = asyncio.get_running_loop().run_in_executor(None, poll)
    await asyncio.wait_for(asyncio.to_thread(started.wait, 10), 10)
    context.request_cancel()
    await asyncio.wait_for(thread_done, 10)

    assert seen == [True]
