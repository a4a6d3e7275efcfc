"""The worker's side of flows: queue children and wait for them without a concurrency slot.

`WorkerFlows` gives each attempt a `FlowRuntime` whose host is the attempt's `_ParentHost`.
A wait goes: put the parent to wait (store) -> leave the slot (worker) -> sleep until an event
of the parent says it was woken (the child's finishing transaction decided it; on PostgreSQL
its NOTIFY reaches this process's bus) -> take a slot again -> `waiting` -> `running`
(store) -> read the children. Beyond the worker's bound on waiting parents the parent is
parked instead: its attempt ends here, and the fan-in re-queues it.
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from app.jobs.context import JobCancelledError, JobContext
from app.jobs.events import EventBus
from app.jobs.flow_decisions import ChildState, StoredChild, wait_mode
from app.jobs.flow_runtime import FlowRuntime, ParentRef
from app.jobs.models import Job
from app.jobs.scheduler import JobScheduler
from app.jobs.store import JobStore
from app.jobs.store.claimed import ClaimedJob

logger = logging.getLogger(__name__)

# A safety net only: a wake arrives as an event (local bus or NOTIFY); this re-reads the
# parent's state if one was missed (e.g. a dropped LISTEN connection).
RECHECK_SECONDS = 5.0


class ParentParked(BaseException):
    """The parent was parked (the worker holds enough waiting parents): its attempt stops
    without an end; the child that completes its wait re-queues it."""


class WaitSlots(Protocol):
    """The worker's slot bookkeeping, as a waiting parent needs it."""

    @property
    def waiting_count(self) -> int:
        """Parents of this worker waiting in memory now."""
        ...

    def leave_slot(self, job_id: str) -> None:
        """The parent waits: its slot is free for other jobs (it stays leased)."""

    async def take_slot(self, job_id: str) -> None:
        """Wait for a free slot and hold it again."""


T = TypeVar("T")


class WaitingParents(Generic[T]):
    """A worker's parents that wait without a slot, and the woken ones waiting for a slot.

    `running` is the worker's own map of jobs holding a slot: a waiting parent leaves it and
    comes back to it when `grant` (called by the claim loop, before it claims new jobs) finds
    a free slot for it.
    """

    def __init__(self, running: dict[str, T], wake: Callable[[], None]) -> None:
        self.running = running
        self.waiting: dict[str, T] = {}
        self._wake = wake
        self._ready: deque[tuple[str, asyncio.Future[None]]] = deque()

    @property
    def waiting_count(self) -> int:
        return len(self.waiting)

    def leave_slot(self, job_id: str) -> None:
        self.waiting[job_id] = self.running.pop(job_id)
        self._wake()

    async def take_slot(self, job_id: str) -> None:
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ready.append((job_id, granted))
        self._wake()
        await granted

    def grant(self, free: int) -> int:
        """Give up to `free` slots to woken parents, oldest first; the number given."""
        given = 0
        while given < free and self._ready:
            job_id, granted = self._ready.popleft()
            if granted.done() or job_id not in self.waiting:
                continue  # canceled or timed out while it waited for a slot
            self.running[job_id] = self.waiting.pop(job_id)
            granted.set_result(None)
            given += 1
        return given

    def discard(self, job_id: str) -> bool:
        return self.waiting.pop(job_id, None) is not None


class WorkerFlows:
    """Flow runtimes for the attempts of one worker."""

    def __init__(
        self,
        store: JobStore,
        scheduler: JobScheduler,
        slots: WaitSlots,
        *,
        worker_id: str,
        max_children: int,
        max_waiting: int,
    ) -> None:
        self.store = store
        self.scheduler = scheduler
        self.slots = slots
        self.worker_id = worker_id
        self.max_children = max_children
        self.max_waiting = max_waiting

    @property
    def bus(self) -> EventBus:
        return self.store.bus

    def runtime_for(self, job: ClaimedJob, context: JobContext) -> FlowRuntime:
        parent = ParentRef(job.id, job.root_id or job.id, self.max_children)
        host = _ParentHost(self, context)
        return FlowRuntime(parent, host, asyncio.get_running_loop())


class _ParentHost:
    """One attempt's `FlowHost`."""

    def __init__(self, flows: WorkerFlows, context: JobContext) -> None:
        self.flows = flows
        self.context = context

    def prepare_child(self, task_name: str, params: dict[str, Any], options: dict[str, Any]) -> Job:
        scheduler = self.flows.scheduler
        return scheduler.build_job(scheduler.definition(task_name), params, **options)

    async def create_children(self, parent_id: str, children: Sequence[Job]) -> list[StoredChild]:
        return await self.flows.store.create_children(self.flows.worker_id, parent_id, children)

    async def wait_for(
        self, parent_id: str, child_ids: Sequence[str], return_exceptions: bool
    ) -> list[ChildState]:
        flows, store = self.flows, self.flows.store
        park = wait_mode(flows.slots.waiting_count, flows.max_waiting) == "park"
        states = await store.begin_wait(
            flows.worker_id, parent_id, child_ids, fail_fast=not return_exceptions, park=park
        )
        if states is not None:
            return states
        if park:
            raise ParentParked(parent_id)
        flows.slots.leave_slot(parent_id)
        # Canceled or timed out while waiting, the attempt ends without taking a slot again.
        await self._until_woken(parent_id)
        await flows.slots.take_slot(parent_id)
        if not await store.resume(flows.worker_id, parent_id):
            raise JobCancelledError(f"job {parent_id} was canceled while it waited")
        return await store.read_children(child_ids)

    async def _until_woken(self, parent_id: str) -> None:
        store = self.flows.store
        with self.flows.bus.subscribe(parent_id) as wake:
            while True:
                wake.clear()
                state = await store.wait_state(parent_id)
                if state == "woken":
                    return
                if state != "waiting" or self.context.cancel_requested:
                    raise JobCancelledError(f"job {parent_id} stopped waiting: it is {state}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), RECHECK_SECONDS)
