"""The flow calls of one running attempt: `spawn`, `map`, `gather` and the blocking `wait`.

One `FlowRuntime` per attempt. It names children (keys and ids, see `flow_decisions`), queues
them in batches (the spawns of one loop turn share a transaction; a map is one), and asks
its `FlowHost` (the worker, writing through the job store) to wait for them. From a sync task
in a thread the same calls block instead: `spawn` returns once the child is queued, `wait`
once the children have finished.
"""

import asyncio
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from app.jobs.flow_decisions import (
    ChildSpec,
    ChildState,
    GatherFailed,
    Mismatch,
    StoredChild,
    attach,
    child_id,
    gather_outcome,
    map_keys,
    spawn_key,
)
from app.jobs.flows import ChildJob, FlowMismatchError
from app.jobs.models import Job

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParentRef:
    """The running parent: its id, its flow's root and the bound on its children."""

    job_id: str
    root_id: str
    max_children: int


class FlowHost(Protocol):
    """What a runtime needs from its worker: build, queue and wait for child jobs."""

    def prepare_child(self, task_name: str, params: dict[str, Any], options: dict[str, Any]) -> Job:
        """A validated job row for the child (raises for an unknown task or bad params)."""
        ...

    async def create_children(self, parent_id: str, children: Sequence[Job]) -> list[StoredChild]:
        """Queue the children that do not exist yet; the stored row of each, in order."""
        ...

    async def wait_for(
        self, parent_id: str, child_ids: Sequence[str], return_exceptions: bool
    ) -> list[ChildState]:
        """Wait (without a slot) until the children have finished, or (fail-fast) one failed;
        their states, in order."""
        ...


class FlowRuntime:
    """The flow calls of one attempt of `parent` (see `JobContext.spawn`)."""

    def __init__(self, parent: ParentRef, host: FlowHost, loop: asyncio.AbstractEventLoop) -> None:
        self.parent = parent
        self.host = host
        self.loop = loop
        self._loop_thread = threading.get_ident()
        self._calls = 0
        self._count = 0
        # Children named but not yet queued, and the queuing of each batch.
        self._batch: list[tuple[Job, ChildSpec]] = []
        self._writes: list[asyncio.Task[None]] = []
        self._failures: dict[str, FlowMismatchError] = {}
        self._wait_lock = asyncio.Lock()

    # Spawning ------------------------------------------------------------------------------

    def spawn(
        self,
        task_name: str,
        params: dict[str, Any] | None,
        key: str | None,
        options: dict[str, Any],
    ) -> ChildJob:
        (child,) = self._name(
            task_name, [params or {}], spawn_key(key, self._next_call()), None, options
        )
        return child

    def map(
        self,
        task_name: str,
        params_list: Sequence[dict[str, Any]],
        key: str | None,
        options: dict[str, Any],
    ) -> list[ChildJob]:
        keys = map_keys(key, self._next_call(), len(params_list))
        return self._name(task_name, list(params_list), keys, range(len(keys)), options)

    def _next_call(self) -> int:
        call = self._calls
        self._calls += 1
        return call

    def _name(
        self,
        task_name: str,
        params_list: list[dict[str, Any]],
        keys: str | list[str],
        indexes: range | None,
        options: dict[str, Any],
    ) -> list[ChildJob]:
        keys = [keys] if isinstance(keys, str) else keys
        if self._count + len(keys) > self.parent.max_children:
            raise ValueError(
                f"job {self.parent.job_id} may have at most {self.parent.max_children} children "
                "(TASKEXEC_MAX_CHILDREN)"
            )
        batch: list[tuple[Job, ChildSpec]] = []
        children: list[ChildJob] = []
        for position, (key, params) in enumerate(zip(keys, params_list, strict=True)):
            job = self.host.prepare_child(task_name, params, options)
            job.id = child_id(self.parent.job_id, key)
            job.parent_id = self.parent.job_id
            job.root_id = self.parent.root_id
            job.child_key = key
            job.map_index = None if indexes is None else indexes[position]
            assert job.request_hash is not None  # noqa: S101 - prepare_child sets it
            batch.append((job, ChildSpec(key, task_name, job.request_hash)))
            children.append(ChildJob(job.id, task_name, key, self, job.map_index))
        self._count += len(batch)
        if threading.get_ident() == self._loop_thread:
            self._batch += batch
            if len(self._batch) == len(batch):
                # One write for every spawn of this loop turn.
                self._writes.append(self.loop.create_task(self._write_batch()))
        else:
            # A sync task: queued before `spawn` returns.
            asyncio.run_coroutine_threadsafe(self._write(batch), self.loop).result()
        return children

    async def _write_batch(self) -> None:
        batch, self._batch = self._batch, []
        await self._write(batch)

    async def _write(self, batch: list[tuple[Job, ChildSpec]]) -> None:
        stored = await self.host.create_children(self.parent.job_id, [job for job, _ in batch])
        for (job, spec), row in zip(batch, stored, strict=True):
            verdict = attach(self.parent.job_id, spec, row)
            if isinstance(verdict, Mismatch):
                self._failures[job.id] = FlowMismatchError(verdict.message)

    async def settle(self) -> None:
        """Make sure every child named so far is queued (raises the first queuing error)."""
        while self._writes:
            writes, self._writes = self._writes, []
            await asyncio.gather(*writes)

    async def settle_quietly(self) -> None:
        """`settle` at the end of the attempt: a child the task never awaited is still queued
        before the attempt's end is written; a failure to queue it is logged."""
        try:
            await self.settle()
        except Exception:
            logger.exception("could not queue a child job", extra={"job_id": self.parent.job_id})

    # Waiting --------------------------------------------------------------------------------

    async def gather(self, children: Sequence[ChildJob], return_exceptions: bool) -> list[Any]:
        await self.settle()
        for child in children:
            if not child.spawned_by(self):
                raise ValueError(f"{child!r} is not a child of job {self.parent.job_id}")
            failure = self._failures.get(child.job_id)
            if failure is not None:
                raise failure
        if not children:
            return []
        # One wait at a time per attempt: the parent is either waiting or not.
        async with self._wait_lock:
            states = await self.host.wait_for(
                self.parent.job_id, [child.job_id for child in children], return_exceptions
            )
        verdict = gather_outcome(states, return_exceptions=return_exceptions)
        if isinstance(verdict, GatherFailed):
            raise verdict.error
        return list(verdict.values)

    def wait_blocking(self, children: Sequence[ChildJob], return_exceptions: bool) -> list[Any]:
        """`gather` for a sync task: blocks its thread (never the loop) until done."""
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("ctx.wait blocks; async tasks use `await ctx.gather(...)`")
        future: Future[list[Any]] = asyncio.run_coroutine_threadsafe(
            self.gather(children, return_exceptions), self.loop
        )
        return future.result()
