"""The job event sink: progress (coalesced, latest wins) and log lines, from any thread,
written in order and one write at a time."""

import asyncio
import logging
import threading
from typing import Any

from app.jobs.context import ProgressUpdate
from app.jobs.events import EventType
from app.jobs.sink import JobEventSink, JobLogHandler, current_sink

Events = list[tuple[str, dict[str, Any]]]


class RecordingWriter:
    """A write function that records each write and can be held so new events pile up."""

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
            await asyncio.wait_for(self.release.wait(), 10)
            self.writes.append((progress, list(events)))
        finally:
            self.in_flight -= 1

    @property
    def events(self) -> Events:
        return [event for _, events in self.writes for event in events]

    @property
    def last_progress(self) -> ProgressUpdate | None:
        stored = [progress for progress, _ in self.writes if progress is not None]
        return stored[-1] if stored else None


def update(n: int) -> ProgressUpdate:
    return ProgressUpdate(n / 100, f"step {n}")


def make_sink(writer: RecordingWriter, *, max_log_lines: int = 100) -> JobEventSink:
    return JobEventSink(asyncio.get_running_loop(), writer, max_log_lines=max_log_lines)


def log_record(message: str, name: str = "my.task") -> logging.LogRecord:
    return logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)


async def handed_over(loop: asyncio.AbstractEventLoop) -> None:
    """Wait until calls other threads handed to the loop before now have run."""
    landed = asyncio.Event()
    loop.call_soon_threadsafe(landed.set)
    await asyncio.wait_for(landed.wait(), 10)


async def test_a_progress_update_is_written() -> None:
    writer = RecordingWriter()
    sink = make_sink(writer)

    sink.progress(update(1))
    await asyncio.wait_for(sink.close(), 10)

    assert writer.last_progress == update(1)
    assert writer.events == [(EventType.PROGRESS, {"fraction": 0.01, "message": "step 1"})]


async def test_progress_during_a_write_is_coalesced_to_the_latest() -> None:
    writer = RecordingWriter()
    writer.release.clear()
    sink = make_sink(writer)

    sink.progress(update(1))
    await asyncio.wait_for(writer.entered.wait(), 10)
    for n in range(2, 50):
        sink.progress(update(n))
    writer.release.set()
    await asyncio.wait_for(sink.close(), 10)

    assert [progress for progress, _ in writer.writes] == [update(1), update(49)]
    progress_events = [data for kind, data in writer.events if kind == EventType.PROGRESS]
    assert progress_events == [
        {"fraction": 0.01, "message": "step 1"},
        {"fraction": 0.49, "message": "step 49"},
    ]
    assert writer.peak_in_flight == 1


async def test_progress_from_another_thread_arrives_and_the_last_one_wins() -> None:
    writer = RecordingWriter()
    loop = asyncio.get_running_loop()
    sink = make_sink(writer)

    def report() -> None:
        for n in range(1, 101):
            sink.progress(update(n))

    await asyncio.wait_for(asyncio.to_thread(report), 10)
    await handed_over(loop)
    await asyncio.wait_for(sink.close(), 10)

    assert writer.last_progress == update(100)
    assert writer.peak_in_flight == 1
    fractions = [data["fraction"] for kind, data in writer.events if kind == EventType.PROGRESS]
    assert fractions == sorted(fractions), "an older update was written after a newer one"


async def test_log_lines_are_all_kept_in_order_with_progress() -> None:
    writer = RecordingWriter()
    writer.release.clear()
    sink = make_sink(writer)

    sink.log(log_record("first"))
    await asyncio.wait_for(writer.entered.wait(), 10)
    sink.progress(update(10))
    sink.log(log_record("second"))
    sink.progress(update(20))
    sink.log(log_record("third"))
    writer.release.set()
    await asyncio.wait_for(sink.close(), 10)

    kinds = [(kind, data.get("message")) for kind, data in writer.events]
    assert kinds == [
        (EventType.LOG, "first"),
        (EventType.LOG, "second"),
        (EventType.PROGRESS, "step 20"),
        (EventType.LOG, "third"),
    ]
    first = writer.events[0][1]
    assert (first["level"], first["logger"]) == ("INFO", "my.task")


async def test_log_lines_over_the_cap_are_dropped_and_counted() -> None:
    writer = RecordingWriter()
    sink = make_sink(writer, max_log_lines=3)

    for n in range(10):
        sink.log(log_record(f"line {n}"))
    await asyncio.wait_for(sink.close(), 10)

    logs = [data["message"] for kind, data in writer.events if kind == EventType.LOG]
    assert logs == ["line 0", "line 1", "line 2"]
    truncated = [data for kind, data in writer.events if kind == EventType.LOG_TRUNCATED]
    assert truncated == [{"dropped": 7, "kept": 3}]


async def test_close_without_events_writes_nothing() -> None:
    writer = RecordingWriter()
    sink = make_sink(writer)

    await asyncio.wait_for(sink.close(), 10)

    assert writer.writes == []


async def test_threads_reporting_at_once_never_write_concurrently() -> None:
    writer = RecordingWriter()
    loop = asyncio.get_running_loop()
    sink = make_sink(writer)
    barrier = threading.Barrier(4)

    def report(offset: int) -> None:
        barrier.wait(10)
        for n in range(25):
            sink.progress(ProgressUpdate((offset * 25 + n) / 100, None))
            sink.log(log_record(f"{offset}-{n}"))

    await asyncio.wait_for(asyncio.gather(*(asyncio.to_thread(report, i) for i in range(4))), 10)
    await handed_over(loop)
    await asyncio.wait_for(sink.close(), 10)

    assert writer.peak_in_flight == 1
    logs = [data["message"] for kind, data in writer.events if kind == EventType.LOG]
    assert sorted(logs) == sorted(f"{o}-{n}" for o in range(4) for n in range(25))
    for offset in range(4):
        mine = [m for m in logs if m.startswith(f"{offset}-")]
        assert mine == [f"{offset}-{n}" for n in range(25)], "one thread's lines out of order"


async def test_log_handler_sends_a_jobs_records_to_its_sink() -> None:
    writer = RecordingWriter()
    sink = make_sink(writer)
    handler = JobLogHandler()

    token = current_sink.set(sink)
    try:
        handler.handle(log_record("from the task", name="my.task"))
        handler.handle(log_record("from the service itself", name="app.jobs.worker"))
    finally:
        current_sink.reset(token)
    handler.handle(log_record("outside any job", name="my.task"))
    await asyncio.wait_for(sink.close(), 10)

    assert [data["message"] for _, data in writer.events] == ["from the task"]
