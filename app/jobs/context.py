"""`JobContext`: what a running task knows about its own job."""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class JobCancelledError(Exception):
    """Raised by `JobContext.raise_if_cancelled()` once cancellation was requested."""


@dataclass(frozen=True)
class ProgressUpdate:
    fraction: float | None
    message: str | None
    # For generator tasks: how many items so far, and the latest one (JSON-compatible).
    item_count: int = 0
    item: Any = None


class JobContext:
    """The running job, injected into a task by annotation (`ctx: JobContext`).

    Works from async tasks and from sync tasks in their threads alike.
    """

    def __init__(
        self,
        *,
        job_id: str,
        task_name: str,
        attempt: int,
        max_attempts: int,
        params: dict[str, Any],
        on_progress: Callable[[ProgressUpdate], None] | None = None,
        scheduled_for: datetime | None = None,
    ) -> None:
        self.job_id = job_id
        self.task_name = task_name
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.params = params
        # The fire time (UTC) when a schedule made this job; None for other jobs.
        self.scheduled_for = scheduled_for
        self.logger = logging.LoggerAdapter(
            logging.getLogger(f"taskexec.task.{task_name}"),
            {"job_id": job_id, "task_name": task_name, "attempt": attempt},
        )
        self._cancel = threading.Event()
        self._on_progress = on_progress

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this job; long sync tasks should check it."""
        return self._cancel.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise `JobCancelledError` if cancellation was requested (ends the job `canceled`)."""
        if self._cancel.is_set():
            raise JobCancelledError(f"job {self.job_id} was canceled")

    def progress(
        self, current: float, total: float | None = None, *, message: str | None = None
    ) -> None:
        """Report progress: a fraction in [0, 1], or `current` of `total`.

        Stored on the job shortly after; frequent calls are coalesced.
        """
        fraction = current / total if total else current
        update = ProgressUpdate(min(1.0, max(0.0, float(fraction))), message)
        if self._on_progress is not None:
            self._on_progress(update)

    def report_item(self, count: int, item: Any) -> None:
        """A generator task yielded its `count`-th item."""
        if self._on_progress is not None:
            self._on_progress(ProgressUpdate(None, f"{count} items", count, item))

    def request_cancel(self) -> None:
        self._cancel.set()
