"""`JobContext`: what a running task knows about its own job."""

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

from app.jobs.flows import ChildJob, FlowCalls, SpawnOptions


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
        flows: FlowCalls | None = None,
    ) -> None:
        self.job_id = job_id
        self.task_name = task_name
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.params = params
        self.logger = logging.LoggerAdapter(
            logging.getLogger(f"taskexec.task.{task_name}"),
            {"job_id": job_id, "task_name": task_name, "attempt": attempt},
        )
        self._cancel = threading.Event()
        self._on_progress = on_progress
        self._flows = flows

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

    # Flows (see `app.jobs.flows`) ------------------------------------------------------------

    def spawn(
        self,
        task_name: str,
        params: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        **options: Unpack[SpawnOptions],
    ) -> ChildJob:
        """Queue a child job of this one and return it: `await child` gives its result.

        `key` names the child under this job (default: the position of the call), so a re-run
        of this job finds the child it made instead of queuing another. Params are validated
        now (`ValidationFailedError`); `options` override the child task's registered ones.
        From a sync task the call returns once the child is queued; from an async task the
        child is queued in the background, with the other spawns of the same loop turn, and
        awaiting it (or the end of the attempt) makes sure it is.
        """
        return self._flow_calls().spawn(task_name, params, key, dict(options))

    def map(
        self,
        task_name: str,
        params_list: Sequence[dict[str, Any]],
        *,
        key: str | None = None,
        **options: Unpack[SpawnOptions],
    ) -> list[ChildJob]:
        """Queue one child per params item, in one transaction, with `map_index` 0..n-1."""
        return self._flow_calls().map(task_name, params_list, key, dict(options))

    async def gather(self, *children: ChildJob, return_exceptions: bool = False) -> list[Any]:
        """Wait for the children, without holding a concurrency slot, and return their results
        in order. The first failed child (in order) raises `ChildJobFailed` as soon as it has
        failed, unless `return_exceptions=True`, which puts each failure in its place."""
        return await self._flow_calls().gather(children, return_exceptions)

    def wait(self, *children: ChildJob, return_exceptions: bool = False) -> list[Any]:
        """`gather` for sync tasks: blocks the task's thread (never the event loop)."""
        return self._flow_calls().wait_blocking(children, return_exceptions)

    def bind_flows(self, flows: FlowCalls) -> None:
        """Give the context its attempt's flow calls (the worker does, before the task runs)."""
        self._flows = flows

    def _flow_calls(self) -> FlowCalls:
        if self._flows is None:
            raise RuntimeError("flows need a job run by a worker (this context has none)")
        return self._flows
