"""Flows: a running task starts other tasks (its children) and waits for them, durably.

How it works (the contract behind `ctx.spawn`, `ctx.map` and `ctx.gather`):

- **Children are jobs.** A child is an ordinary row of the job table with `parent_id` (the job
  that spawned it), `root_id` (the flow's first job; None on the root itself), `map_index`
  (its position in a `ctx.map`) and `child_key` (its identity under its parent). Any worker may
  run it; limits, retries, timeouts and cancellation apply to it as to any job.
- **Identity and re-attachment.** A child is identified by its parent and its key: the `key`
  the caller gave, or the position of the call in the parent's code (`#0`, `#1`, ... for
  `spawn`; `#2[0]`, `#2[1]`, ... for the items of a `map`). Its job id is derived from both,
  so `ChildJob.job_id` is known when `spawn` returns. When a parent runs again (its worker died,
  or it is retried), the same calls find the children it already made: finished ones give
  their stored results at once, unfinished ones are awaited, none is created twice. Spawning an
  existing key with another task or other params is a `FlowMismatchError`.
- **Waiting holds no slot.** A parent that awaits unfinished children becomes `waiting`: it
  keeps its lease (the worker renews it, so a crash is still detected) but leaves its
  concurrency slot, and it counts against no task or tag limit, so a flow never deadlocks
  under any limit. The children it awaits are rows of `job_waits`.
- **Fan-in in the child's transaction.** The transaction that finishes a child deletes its
  wait row under the parent's row lock; when the parent awaits nothing more (or, fail-fast,
  the child failed) the same transaction wakes the parent: an event on the parent (whose NOTIFY
  reaches the parent's worker on PostgreSQL), or, for a parent no worker holds, a re-queue.
  Nothing polls and no timer fires. The woken parent resumes when its worker has a free slot.
- **A parent's `timeout` covers its whole flow**, waiting included: the attempt is one
  coroutine (or one thread) whatever it awaits.
- **Failure and cancel.** `await child` raises `ChildJobFailed` when the child failed or was
  canceled; `gather` raises the first one (in argument order) as soon as any awaited child
  fails, unless `return_exceptions=True`, which collects them in place. When a parent ends for
  good (completed, failed or canceled) its unfinished descendants are canceled: a flow ends
  with its parent. Cancelling a job cancels its unfinished descendants, deepest first, then
  the job, in one transaction.
"""

from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any, Protocol, TypedDict


class ChildJobFailed(Exception):
    """A child job failed or was canceled: its id, final status, error type and message."""

    def __init__(self, job_id: str, status: str, error_type: str, message: str) -> None:
        super().__init__(f"child job {job_id} {status}: {error_type}: {message}")
        self.job_id = job_id
        self.status = status
        self.error_type = error_type
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.job_id, self.status, self.error_type, self.message))


class FlowMismatchError(Exception):
    """A re-run parent spawned a child key it had used for another task or other params."""


class SpawnOptions(TypedDict, total=False):
    """Per-child overrides of the child task's registered options."""

    priority: int | None
    delay: float | None
    run_at: datetime | None
    timeout: float | None
    retries: int | None


class FlowCalls(Protocol):
    """The flow calls of a running attempt, behind `JobContext.spawn`, `map`, `gather`, `wait`."""

    def spawn(
        self,
        task_name: str,
        params: dict[str, Any] | None,
        key: str | None,
        options: dict[str, Any],
    ) -> "ChildJob": ...

    def map(
        self,
        task_name: str,
        params_list: Sequence[dict[str, Any]],
        key: str | None,
        options: dict[str, Any],
    ) -> list["ChildJob"]: ...

    async def gather(
        self, children: Sequence["ChildJob"], return_exceptions: bool
    ) -> list[Any]: ...

    def wait_blocking(
        self, children: Sequence["ChildJob"], return_exceptions: bool
    ) -> list[Any]: ...


class ChildWaiter(Protocol):
    """What a `ChildJob` needs to be awaited: the running parent's flow runtime."""

    async def gather(self, children: Sequence["ChildJob"], return_exceptions: bool) -> list[Any]:
        """The children's results in order (or their `ChildJobFailed`, when collecting)."""
        ...


class ChildJob:
    """A child job a running task spawned. `await child` returns its result or raises
    `ChildJobFailed`; `job_id` names it (readable at `/api/v1/jobs/{job_id}`)."""

    __slots__ = ("_waiter", "job_id", "key", "map_index", "task_name")

    def __init__(
        self,
        job_id: str,
        task_name: str,
        key: str,
        waiter: ChildWaiter,
        map_index: int | None = None,
    ) -> None:
        self.job_id = job_id
        self.task_name = task_name
        self.key = key
        self.map_index = map_index
        self._waiter = waiter

    def spawned_by(self, waiter: ChildWaiter) -> bool:
        """Whether this child belongs to the attempt of `waiter` (only a parent awaits it)."""
        return self._waiter is waiter

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result().__await__()

    async def _result(self) -> Any:
        (value,) = await self._waiter.gather([self], return_exceptions=False)
        return value

    def __repr__(self) -> str:
        return f"ChildJob({self.job_id!r}, task={self.task_name!r}, key={self.key!r})"
