"""Per-job event sink: progress updates and log lines from a running task, written in order.

Tasks report from the loop or from their own thread; the sink hands everything to the loop and
writes it in short transactions, one at a time, so events keep their order. While a write is in
flight, newer progress updates replace older unwritten ones; log lines are all kept, up to the
per-job caps (lines and bytes), after which one `log_truncated` event says what was dropped.

Everything is bounded before it is queued, in the thread that logged it: a line over
`max_log_line_bytes` keeps its start and end around a marker, a progress message is cut to
`max_error_message_bytes`, and server file paths in a logged traceback are redacted unless
`expose_traceback_paths` is set.
"""

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from app.core.tracebacks import format_exception, redact_paths
from app.jobs.bounds import Bounds, cut_middle, truncate_head, utf8_size
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


@dataclasses.dataclass
class _LogLine:
    data: dict[str, Any]
    size: int  # bytes of the stored message
    original: int  # bytes of the message as logged
    cut: int  # bytes of the message left out to fit one line's bound (the marker's count)


class JobEventSink:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        write: WriteEvents,
        *,
        max_log_lines: int,
        bounds: Bounds | None = None,
    ) -> None:
        self._loop = loop
        self._write = write
        self._max_log_lines = max_log_lines
        self._bounds = bounds or Bounds()
        # The caps are per job: `counted_earlier` adds earlier attempts' lines and bytes.
        self._log_lines = 0
        self._log_bytes = 0
        self._dropped = 0
        self._dropped_bytes = 0
        self._shortened = 0
        self._progress: ProgressUpdate | None = None
        self._events: Events = []
        self._flusher: asyncio.Task[None] | None = None
        # After the attempt's end is recorded nothing more is stored (a timed-out thread may
        # keep logging): events must not follow the terminal event.
        self._closed = False

    def progress(self, update: ProgressUpdate) -> None:
        """Thread-safe: record a progress update (the `JobContext.progress` callback)."""
        if update.message is not None:
            message = truncate_head(update.message, self._bounds.max_error_message_bytes)
            update = dataclasses.replace(update, message=message)
        self._call(self._offer_progress, update)

    def log(self, record: logging.LogRecord) -> None:
        """Thread-safe: record a log line of the task, bounded and without server paths."""
        message = record.getMessage()
        details = self._details(record)
        if details:
            message = f"{message}\n{details}"
        original = utf8_size(message)
        message, cut = cut_middle(message, self._bounds.max_log_line_bytes)
        data = {"level": record.levelname, "logger": record.name, "message": message}
        self._call(self._offer_log, _LogLine(data, utf8_size(message), original, cut))

    def _details(self, record: logging.LogRecord) -> str:
        """The traceback and stack a record carries, redacted unless paths are exposed."""
        parts = []
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(format_exception(record.exc_info[1]).rstrip("\n"))
        elif record.exc_info:
            parts.append(_formatter.formatException(record.exc_info))
        if record.stack_info:
            parts.append(_formatter.formatStack(record.stack_info))
        text = "\n".join(parts)
        return text if self._bounds.expose_traceback_paths else redact_paths(text)

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

    def _offer_log(self, line: _LogLine) -> None:
        if self._closed:
            return
        over_bytes = self._log_bytes + line.size > self._bounds.max_log_bytes
        if self._log_lines >= self._max_log_lines or over_bytes:
            self._dropped += 1
            self._dropped_bytes += line.original
            return
        self._log_lines += 1
        self._log_bytes += line.size
        if line.cut:
            self._shortened += 1
            self._dropped_bytes += line.cut
        self._events.append((EventType.LOG, line.data))
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

    def counted_earlier(self, lines: int, size: int = 0) -> None:
        """Count the log lines (and their bytes) earlier attempts of the job already stored."""
        self._log_lines += lines
        self._log_bytes += size

    async def close(self) -> None:
        """Write what is pending, including a note of dropped and shortened log lines."""
        if self._dropped or self._shortened:
            note = {
                "dropped": self._dropped,
                "kept": min(self._log_lines, self._max_log_lines),
                "shortened": self._shortened,
                "dropped_bytes": self._dropped_bytes,
            }
            self._events.append((EventType.LOG_TRUNCATED, note))
            self._dropped = self._shortened = self._dropped_bytes = 0
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
