"""`JobContext`: what a running task knows about its own job."""

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from app.artifacts.schemas import ArtifactRead

# How long `add_artifact_sync` waits for the loop to store the artifact.
SYNC_ARTIFACT_TIMEOUT = 60.0


class JobCancelledError(Exception):
    """Raised by `JobContext.raise_if_cancelled()` once cancellation was requested."""


class ArtifactWriter(Protocol):
    """Stores named artifacts of a job (implemented by `ArtifactManager`)."""

    async def add_named(
        self,
        job_id: str,
        name: str,
        data: Any,
        *,
        kind: str = "json",
        description: str | None = None,
        parent_id: str | None = None,
    ) -> "ArtifactRead": ...


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
        # Named artifacts: set by the runner; the loop serves `add_artifact_sync` from threads.
        self.artifacts: ArtifactWriter | None = None
        self._loop = _running_loop()

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

    async def add_artifact(
        self,
        name: str,
        data: Any,
        *,
        kind: str = "json",
        description: str | None = None,
        parent_id: str | None = None,
    ) -> "ArtifactRead":
        """Store a named artifact of this job (a retry that adds `name` again replaces it).

        `kind` is json, text or markdown (a string), table (`{"columns", "rows"}` or a list
        of records) or link (`{"url", "title"}`); `parent_id` nests it under another artifact.
        Raises `ArtifactInvalid` for a bad name, kind, shape or parent and `ArtifactTooLarge`
        past `TASKEXEC_MAX_ARTIFACT_BYTES`. Each store is an `artifact_created` job event.
        """
        if self.artifacts is None:
            raise RuntimeError("this job context has no artifact store")
        return await self.artifacts.add_named(
            self.job_id, name, data, kind=kind, description=description, parent_id=parent_id
        )

    def add_artifact_sync(
        self,
        name: str,
        data: Any,
        *,
        kind: str = "json",
        description: str | None = None,
        parent_id: str | None = None,
    ) -> "ArtifactRead":
        """`add_artifact` for sync tasks (which run in threads): blocks until it is stored.

        Not for async tasks: from the event loop's own thread it raises `RuntimeError`.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("this job context is not attached to an event loop")
        if _running_loop() is loop:
            raise RuntimeError("in an async task, use `await ctx.add_artifact(...)`")
        coroutine = self.add_artifact(
            name, data, kind=kind, description=description, parent_id=parent_id
        )
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(SYNC_ARTIFACT_TIMEOUT)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
