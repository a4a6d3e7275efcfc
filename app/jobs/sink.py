"""Per-job event sink: progress updates and log lines from a running task, written in order.

Tasks report from the loop or from their own thread; the sink hands everything to the loop and
writes it in short transactions, one at a time, so events keep their order. While a write is in
flight, newer progress updates replace older unwritten ones; log lines are all kept, up to the
per-job cap, after which one `log_truncated` event says what was dropped.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from app.jobs.context import ProgressUpdate
from app.jobs.events import EventType

logger = logging.getLogger(__name__)

Events = list[tuple[str, dict[str, Any]]]
WriteEvents = Callable[[ProgressUpdate | None, Events], Awaitable[None]]

current_sink: ContextVar["JobEventSink | None"] = ContextVar("taskexec_job_sink", default=None)

# The service's own loggers (not task modules that happen to live in the package).
_OWN_LOGGERS = (
    *(
        f"app.{name}"
        for name in (
            "artifacts",
            "core",
            "db",
            "jobs",
            "service",
            "tasks",
            "runtime",
            "main",
            "cli",
            "migrations",
        )
    ),
    *("sqlalchemy", "aiosqlite", "asyncpg", "asyncio", "uvicorn", "alembic"),
)
_formatter = logging.Formatter()


class JobEventSink:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        write: WriteEvents,
        *,
        max_log_lines: int,
    ) -> None:
        self._loop = loop
        self._write = write
        self._max_log_lines = max_log_lines
        # The cap is per job: `counted_earlier` adds earlier attempts' lines.
        self._log_lines = 0
        self._dropped = 0
        self._progress: ProgressUpdate | None = None
        self._events: Events = []
        self._flusher: asyncio.Task[None] | None = None
        # After the attempt's end is recorded nothing more is stored (a timed-out thread may
        # keep logging): events must not follow the terminal event.
        self._closed = False

    def progress(self, update: ProgressUpdate) -> None:
        """Thread-safe: record a progress update (the `JobContext.progress` callback)."""
        self._call(self._offer_progress, update)

    def log(self, record: logging.LogRecord) -> None:
        """Thread-safe: record a log line of the task."""
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{_formatter.formatException(record.exc_info)}"
        data = {"level": record.levelname, "logger": record.name, "message": message}
        self._call(self._offer_log, data)

    def _call(self, fn: Callable[[Any], None], arg: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            fn(arg)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, arg)

    def _offer_progress(self, update: ProgressUpdate) -> None:
        if self._closed:
            return
        data = {"fraction": update.fraction, "message": update.message}
        if update.item is not None:
            data["item"] = update.item
        if self._progress is not None:
            # Coalesce: this update replaces the one not written yet.
            self._events = [e for e in self._events if e[0] != EventType.PROGRESS]
        self._progress = update
        self._events.append((EventType.PROGRESS, data))
        self._schedule()

    def _offer_log(self, data: dict[str, Any]) -> None:
        if self._closed:
            return
        if self._log_lines >= self._max_log_lines:
            self._dropped += 1
            return
        self._log_lines += 1
        self._events.append((EventType.LOG, data))
        self._schedule()

    def _schedule(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = self._loop.create_task(self._flush())

    async def _flush(self) -> None:
        while self._events:
            events, self._events = self._events, []
            progress, self._progress = self._progress, None
            try:
                await self._write(progress, events)
            except Exception:
                logger.warning("could not store job events", exc_info=True)

    def counted_earlier(self, lines: int) -> None:
        """Count log lines earlier attempts of the job already stored."""
        self._log_lines += lines

    async def close(self) -> None:
        """Write what is pending, including a note of dropped log lines."""
        if self._dropped:
            kept = min(self._log_lines, self._max_log_lines)
            self._events.append((EventType.LOG_TRUNCATED, {"dropped": self._dropped, "kept": kept}))
            self._dropped = 0
            self._schedule()
        self._closed = True
        while self._flusher is not None and not self._flusher.done():
            await self._flusher


class JobLogHandler(logging.Handler):
    """Sends records logged while a job runs (in its context) to that job's sink."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = current_sink.get()
        if sink is None or record.name.startswith(_OWN_LOGGERS):
            return
        try:
            sink.log(record)
        except Exception:
            self.handleError(record)


def install_log_capture() -> None:
    """Attach the capturing handler to the root logger (once per process)."""
    root = logging.getLogger()
    if not any(isinstance(handler, JobLogHandler) for handler in root.handlers):
        root.addHandler(JobLogHandler(level=logging.DEBUG))
    # JobContext.logger writes INFO and above whatever the root level is.
    task_logger = logging.getLogger("taskexec.task")
    if task_logger.level == logging.NOTSET:
        task_logger.setLevel(logging.INFO)
