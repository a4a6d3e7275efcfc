"""JobEventSink and log capture: a running task's progress and log lines, in order, capped."""

import asyncio
import contextvars
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from app.jobs.bounds import Bounds
from app.jobs.context import ProgressUpdate
from app.jobs.events import EventType
from app.jobs.sink import JobEventSink, JobLogHandler, current_sink, install_log_capture

WAIT = 10.0
Events = list[tuple[str, dict[str, Any]]]


class Recorder:
    """A write function that stores what it gets and can be held to let updates pile up."""

    def __init__(self) -> None:
        self.writes: list[tuple[ProgressUpdate | None, Events]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, progress: ProgressUpdate | None, events: Events) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self.entered.set()
        try:
            await asyncio.wait_for(self.release.wait(), WAIT)
            self.writes.append((progress, list(events)))
        finally:
            self.in_flight -= 1

    @property
    def events(self) -> Events:
        return [event for _, events in self.writes for event in events]

    def messages(self) -> list[str]:
        return [data["message"] for type_, data in self.events if type_ == EventType.LOG]


def record(
    message: str, *, name: str = "user.task", level: int = logging.INFO
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def sink_for(recorder: Recorder, max_log_lines: int = 1000) -> JobEventSink:
    return JobEventSink(asyncio.get_running_loop(), recorder, max_log_lines=max_log_lines)


async def handed_over() -> None:
    """Let callbacks that threads handed to the loop run."""
    done = asyncio.Event()
    asyncio.get_running_loop().call_soon_threadsafe(done.set)
    await asyncio.wait_for(done.wait(), WAIT)


async def test_log_lines_are_written_in_order_with_level_and_logger() -> None:
    recorder = Recorder()
    sink = sink_for(recorder)

    sink.log(record("one"))
    sink.log(record("two", name="other", level=logging.WARNING))
    await asyncio.wait_for(sink.close(), WAIT)

    assert recorder.events == [
        ("log", {"level": "INFO", "logger": "user.task", "message": "one"}),
        ("log", {"level": "WARNING", "logger": "other", "message": "two"}),
    ]


async def test_a_log_line_with_an_exception_carries_its_traceback() -> None:
    recorder = Recorder()
    sink = sink_for(recorder)
    try:
        raise ValueError("bad value")
    except ValueError:
        line = logging.LogRecord(
            "user.task", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    sink.log(line)
    await asyncio.wait_for(sink.close(), WAIT)

    [(type_, data)] = recorder.events
    assert type_ == "log"
    assert data["message"].startswith("failed\nTraceback")
    assert "ValueError: bad value" in data["message"]


async def test_progress_is_written_with_the_job_update() -> None:
    recorder = Recorder()
    sink = sink_for(recorder)

    sink.progress(ProgressUpdate(0.5, "half"))
    await asyncio.wait_for(sink.close(), WAIT)

    [(progress, events)] = recorder.writes
    assert progress == ProgressUpdate(0.5, "half")
    assert events == [("progress", {"fraction": 0.5, "message": "half"})]


async def test_a_generator_item_travels_in_the_progress_event() -> None:
    recorder = Recorder()
    sink = sink_for(recorder)

    sink.progress(ProgressUpdate(None, "3 items", 3, {"id": 3}))
    await asyncio.wait_for(sink.close(), WAIT)

    assert recorder.events == [
        ("progress", {"fraction": None, "message": "3 items", "item": {"id": 3}})
    ]


async def test_progress_during_a_write_is_coalesced_but_log_lines_are_all_kept() -> None:
    recorder = Recorder()
    recorder.release.clear()
    sink = sink_for(recorder)

    sink.progress(ProgressUpdate(0.1, None))
    await asyncio.wait_for(recorder.entered.wait(), WAIT)
    for n in range(2, 10):
        sink.log(record(f"line {n}"))
        sink.progress(ProgressUpdate(n / 10, None))
    recorder.release.set()
    await asyncio.wait_for(sink.close(), WAIT)

    assert recorder.peak_in_flight == 1
    progress = [data["fraction"] for type_, data in recorder.events if type_ == "progress"]
    assert progress == [0.1, 0.9]
    assert recorder.messages() == [f"line {n}" for n in range(2, 10)]
    # The job row gets the latest update with the second write.
    assert [update for update, _ in recorder.writes] == [
        ProgressUpdate(0.1, None),
        ProgressUpdate(0.9, None),
    ]


async def test_lines_over_the_cap_are_dropped_and_counted_once() -> None:
    recorder = Recorder()
    sink = sink_for(recorder, max_log_lines=3)

    for n in range(8):
        sink.log(record(f"line {n}"))
    await asyncio.wait_for(sink.close(), WAIT)

    assert recorder.messages() == ["line 0", "line 1", "line 2"]
    assert recorder.events[-1] == (
        "log_truncated",
        {"dropped": 5, "kept": 3, "shortened": 0, "dropped_bytes": 30},
    )
    assert [type_ for type_, _ in recorder.events].count("log_truncated") == 1


async def test_a_cap_of_zero_keeps_no_lines() -> None:
    recorder = Recorder()
    sink = sink_for(recorder, max_log_lines=0)

    sink.log(record("dropped"))
    await asyncio.wait_for(sink.close(), WAIT)

    assert recorder.events == [
        ("log_truncated", {"dropped": 1, "kept": 0, "shortened": 0, "dropped_bytes": 7})
    ]


async def test_without_dropped_lines_there_is_no_truncation_note() -> None:
    recorder = Recorder()
    sink = sink_for(recorder, max_log_lines=2)

    sink.log(record("a"))
    sink.log(record("b"))
    await asyncio.wait_for(sink.close(), WAIT)

    assert [type_ for type_, _ in recorder.events] == ["log", "log"]


async def test_close_without_anything_writes_nothing() -> None:
    recorder = Recorder()
    await asyncio.wait_for(sink_for(recorder).close(), WAIT)
    assert recorder.writes == []


async def test_progress_from_another_thread_arrives_and_the_last_one_wins() -> None:
    recorder = Recorder()
    sink = sink_for(recorder)

    def report() -> None:
        for n in range(1, 101):
            sink.progress(ProgressUpdate(n / 100, f"step {n}"))

    await asyncio.wait_for(asyncio.to_thread(report), WAIT)
    await handed_over()
    await asyncio.wait_for(sink.close(), WAIT)

    progress = [p for p, _ in recorder.writes if p is not None]
    assert progress[-1] == ProgressUpdate(1.0, "step 100")
    assert recorder.peak_in_flight == 1
    fractions = [data["fraction"] for kind, data in recorder.events if kind == EventType.PROGRESS]
    assert fractions == sorted(fractions), "an older update was written after a newer one"


async def test_lines_from_threads_keep_each_threads_order() -> None:
    recorder = Recorder()
    sink = sink_for(recorder)
    barrier = threading.Barrier(4)

    def write(thread: int) -> None:
        barrier.wait(WAIT)
        for n in range(50):
            sink.log(record(f"{thread}:{n}"))

    await asyncio.wait_for(asyncio.gather(*(asyncio.to_thread(write, t) for t in range(4))), WAIT)
    await handed_over()
    await asyncio.wait_for(sink.close(), WAIT)

    messages = recorder.messages()
    assert len(messages) == 200
    for thread in range(4):
        mine = [m for m in messages if m.startswith(f"{thread}:")]
        assert mine == [f"{thread}:{n}" for n in range(50)]
    assert recorder.peak_in_flight == 1


async def test_a_failed_write_is_logged_and_later_events_still_go_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    written: Events = []
    failures = 0
    failed = asyncio.Event()

    async def flaky(progress: ProgressUpdate | None, events: Events) -> None:
        nonlocal failures
        if failures == 0:
            failures += 1
            failed.set()
            raise ConnectionError("database went away")
        written.extend(events)

    sink = JobEventSink(asyncio.get_running_loop(), flaky, max_log_lines=10)
    with caplog.at_level(logging.WARNING, logger="app.jobs.sink"):
        sink.log(record("lost"))

        await asyncio.wait_for(failed.wait(), WAIT)
        sink.log(record("kept"))
        await asyncio.wait_for(sink.close(), WAIT)

    assert any("could not store" in r.getMessage() for r in caplog.records)

    assert failures == 1
    assert [data["message"] for _, data in written] == ["kept"]


async def test_nothing_is_stored_after_close() -> None:
    recorder = Recorder()
    sink = JobEventSink(asyncio.get_running_loop(), recorder, max_log_lines=10)
    sink.log(record("before"))
    await asyncio.wait_for(sink.close(), WAIT)

    sink.log(record("after"))
    sink.progress(ProgressUpdate(0.5, "after"))
    await asyncio.wait_for(sink.close(), WAIT)

    assert [data.get("message") for write in recorder.writes for _, data in write[1]] == ["before"]


async def test_reports_after_the_loop_closed_are_ignored() -> None:
    recorder = Recorder()
    loop = asyncio.new_event_loop()
    sink = JobEventSink(loop, recorder, max_log_lines=10)
    loop.close()

    def report() -> None:
        sink.log(record("too late"))
        sink.progress(ProgressUpdate(1.0, None))

    await asyncio.wait_for(asyncio.to_thread(report), WAIT)

    assert recorder.writes == []


# The logging handler


LOGGER_NAMES = ("tests.sink", "app.jobs.sink_test", "sqlalchemy.sink", "app.example_tasks")


@pytest.fixture
def capture_handler() -> Iterator[JobLogHandler]:
    """A JobLogHandler on a private logger tree (the root logger is left alone)."""
    handler = JobLogHandler(level=logging.DEBUG)
    loggers = [logging.getLogger(name) for name in LOGGER_NAMES]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        # A worker started earlier in this process put a capturing handler on the root.
        logger.propagate = False
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
            logger.propagate = True


async def test_the_handler_sends_records_of_the_current_job_only(
    capture_handler: JobLogHandler,
) -> None:
    recorder = Recorder()
    sink = sink_for(recorder)
    logger = logging.getLogger("tests.sink")

    logger.info("outside any job")

    def in_job() -> None:
        current_sink.set(sink)
        logger.info("inside the job")

    contextvars.copy_context().run(in_job)
    logger.info("outside again")
    await asyncio.wait_for(sink.close(), WAIT)

    assert recorder.messages() == ["inside the job"]
    assert current_sink.get() is None


async def test_the_handler_ignores_framework_loggers(capture_handler: JobLogHandler) -> None:
    recorder = Recorder()
    sink = sink_for(recorder)

    def in_job() -> None:
        current_sink.set(sink)
        logging.getLogger("app.jobs.sink_test").warning("framework line")
        logging.getLogger("sqlalchemy.sink").warning("driver line")
        logging.getLogger("tests.sink").warning("task line")
        # Task modules that live inside the package are tasks, not the framework.
        logging.getLogger("app.example_tasks").warning("example task line")

    contextvars.copy_context().run(in_job)
    await asyncio.wait_for(sink.close(), WAIT)

    assert recorder.messages() == ["task line", "example task line"]


async def test_the_handler_follows_the_context_into_threads(
    capture_handler: JobLogHandler,
) -> None:
    first, second = Recorder(), Recorder()
    sinks = {"first": sink_for(first), "second": sink_for(second)}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        current_sink.set(sinks[name])
        barrier.wait(WAIT)
        for n in range(20):
            logging.getLogger("tests.sink").info("%s %d", name, n)

    loop = asyncio.get_running_loop()
    await asyncio.wait_for(
        asyncio.gather(
            *(
                loop.run_in_executor(None, contextvars.copy_context().run, work, name)
                for name in sinks
            )
        ),
        WAIT,
    )
    await handed_over()
    for sink in sinks.values():
        await asyncio.wait_for(sink.close(), WAIT)

    assert first.messages() == [f"first {n}" for n in range(20)]
    assert second.messages() == [f"second {n}" for n in range(20)]


def test_install_log_capture_adds_one_handler_and_lets_task_loggers_speak() -> None:
    root = logging.getLogger()
    task_logger = logging.getLogger("taskexec.task")
    saved_handlers = list(root.handlers)
    saved_level = task_logger.level
    try:
        for handler in [h for h in root.handlers if isinstance(h, JobLogHandler)]:
            root.removeHandler(handler)
        task_logger.setLevel(logging.NOTSET)

        install_log_capture()
        install_log_capture()

        assert sum(isinstance(h, JobLogHandler) for h in root.handlers) == 1
        assert task_logger.level == logging.INFO
        assert logging.getLogger("taskexec.task.some_task").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = saved_handlers
        task_logger.setLevel(saved_level)


def test_install_log_capture_keeps_a_level_set_by_the_author() -> None:
    task_logger = logging.getLogger("taskexec.task")
    saved_level = task_logger.level
    root = logging.getLogger()
    saved_handlers = list(root.handlers)
    try:
        task_logger.setLevel(logging.DEBUG)
        install_log_capture()
        assert task_logger.level == logging.DEBUG
    finally:
        root.handlers[:] = saved_handlers
        task_logger.setLevel(saved_level)


def failure_record() -> logging.LogRecord:
    try:
        raise ValueError("caught here")
    except ValueError:
        exc_info = sys.exc_info()
    return logging.LogRecord("user.task", logging.ERROR, __file__, 1, "failed", None, exc_info)


@pytest.mark.parametrize("expose", [False, True])
async def test_logged_tracebacks_keep_server_paths_only_when_exposed(expose: bool) -> None:
    recorder = Recorder()
    sink = JobEventSink(
        asyncio.get_running_loop(),
        recorder,
        max_log_lines=10,
        bounds=Bounds(expose_traceback_paths=expose),
    )

    sink.log(failure_record())
    await asyncio.wait_for(sink.close(), WAIT)

    [message] = recorder.messages()
    assert message.startswith("failed\nTraceback (most recent call last):")
    assert message.endswith("ValueError: caught here")
    assert (f'File "{__file__}"' in message) is expose
    assert ('File "test_sink.py"' in message) is not expose


async def test_a_long_line_keeps_its_start_and_end_and_is_noted() -> None:
    recorder = Recorder()
    sink = JobEventSink(
        asyncio.get_running_loop(),
        recorder,
        max_log_lines=10,
        bounds=Bounds(max_log_line_bytes=300, max_log_bytes=10_000),
    )

    sink.log(record("start" + "x" * 5000 + "end"))
    await asyncio.wait_for(sink.close(), WAIT)

    [message] = recorder.messages()
    assert len(message.encode()) <= 300
    assert message.startswith("startxxx")
    assert message.endswith("xxxend")
    assert "… [truncated " in message
    note = recorder.events[-1]
    assert note[0] == "log_truncated"
    assert note[1] == {
        "dropped": 0,
        "kept": 1,
        "shortened": 1,
        "dropped_bytes": int(message.split("… [truncated ")[1].split(" bytes]")[0]),
    }
