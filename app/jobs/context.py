"""`JobContext`: what a running task knows about its own job."""

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, Unpack

from app.jobs.flows import ChildJob, FlowCalls, SpawnOptions

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
        flows: FlowCalls | None = None,
    ) -> None:
        self.job_id = job_id
        self.task_name = task_name
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.params = params
        # The fire time (UTC) when a schedule made this job; None for other jobs.
        self.scheduled_for = scheduled_for
        # Set once, read from any thread (a bool is enough under the GIL; nothing waits on it).
        self._cancel = False
        self._on_progress = on_progress
        # Named artifacts: set by the runner; the loop serves `add_artifact_sync` from threads.
        self.artifacts: ArtifactWriter | None = None
        self._loop = _running_loop()
        self._flows = flows

    @functools.cached_property
    def logger(self) -> "logging.LoggerAdapter[logging.Logger]":
        """The task's logger: its lines carry the job's ids and are stored with the job."""
        return logging.LoggerAdapter(
            logging.getLogger(f"taskexec.task.{self.task_name}"),
            {"job_id": self.job_id, "task_name": self.task_name, "attempt": self.attempt},
        )

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this job; long sync tasks should check it."""
        return self._cancel

    def raise_if_cancelled(self) -> None:
        """Raise `JobCancelledError` if cancellation was requested (ends the job `canceled`)."""
        if self._cancel:
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
        self._cancel = True

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

    def detach_flows(self) -> None:
        """The attempt is over: drop its flow calls (they refer back to this context, and a
        cycle would leave both for the cyclic garbage collector instead of freeing them)."""
        self._flows = None

    def _flow_calls(self) -> FlowCalls:
        if self._flows is None:
            raise RuntimeError("flows need a job run by a worker (this context has none)")
        return self._flows


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
