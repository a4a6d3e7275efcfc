"""The worker: claims jobs from the job table and runs them under a concurrency limit."""

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from app.core.heap import settle_heap
from app.core.metrics import Metrics
from app.db.database import Database
from app.jobs.decisions import Retry
from app.jobs.events import EventBus
from app.jobs.flow_host import WaitingParents, WorkerFlows
from app.jobs.injectables import Injectables
from app.jobs.results_feed import ResultsFeed
from app.jobs.sink import install_log_capture
from app.jobs.store import AfterCommit, AttemptEnd, JobStore, Recorded
from app.jobs.worker_claims import Claims
from app.jobs.worker_config import WorkerConfig
from app.jobs.worker_ids import make_worker_id
from app.jobs.worker_runs import JobRuns, RunningJob
from app.jobs.worker_upkeep import Upkeep
from app.tasks.registry import Registry, TaskRegistry
from app.workers.presence import WorkerPresence

__all__ = ["Worker", "WorkerConfig"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Worker:
    """Claims pending jobs of the tasks it has registered and runs them: async tasks on the
    loop, sync tasks in threads (or a child process when the task asks for one), never more
    than `concurrency` at once.

    Nothing about a job lives only here: each claim, lease renewal and result is written by
    the job store, so another worker (or this one after a restart) can finish what this one
    could not.
    """

    def __init__(
        self,
        database: Database,
        config: WorkerConfig,
        *,
        injectables: Injectables,
        registry: Registry | None = None,
        worker_id: str | None = None,
        bus: EventBus | None = None,
        metrics: Metrics | None = None,
        store: JobStore | None = None,
    ) -> None:
        self.database = database
        self.store = store or JobStore(database, AfterCommit(bus or EventBus(), metrics))
        if self.store.after_commit.worker is None:
            self.store.after_commit.worker = self
        self.config = config
        self.registry = registry if registry is not None else TaskRegistry.default()
        self.injectables = injectables
        self.worker_id = worker_id or make_worker_id()
        self.presence = WorkerPresence(
            database,
            self.worker_id,
            timeout=config.worker_timeout or config.lease_seconds,
            tasks=self.registry.names(),
        )
        self.upkeep = Upkeep(database, self.store, self.worker_id, config)
        self._wake = asyncio.Event()
        # Jobs holding a concurrency slot: executing, or a timed-out thread still running.
        self._running: dict[str, RunningJob] = {}
        # Parents waiting for their children hold no slot (see `app.jobs.flows`).
        self._parents = WaitingParents(self._running, self._wake.set)
        flows = WorkerFlows(
            self.store,
            injectables.scheduler,
            self._parents,
            worker_id=self.worker_id,
            max_children=config.max_children,
            max_waiting=config.max_waiting_parents,
        )
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        # Submits, finished attempts and new claims share the store's transactions (group
        # commit), in that order; the effects of a batch of ends are applied together once it
        # has committed.
        group = self.store.group
        ends = group.writer(JobStore.finish_in, after=self._ended)
        self._runs = JobRuns(
            worker_id=self.worker_id,
            config=config,
            registry=self.registry,
            injectables=injectables,
            database=database,
            store=self.store,
            # A sync parent waiting for its children blocks its thread (not its slot).
            executor=ThreadPoolExecutor(
                config.concurrency + config.max_waiting_parents,
                thread_name_prefix="taskexec-sync",
            ),
            ends=ends,
            running=self._running,
            parents=self._parents,
            flows=flows,
            wake=self._wake.set,
        )
        # A batch of ends also claims jobs for the slots those attempts freed.
        self._claims = Claims(
            worker_id=self.worker_id,
            config=config,
            registry=self.registry,
            running=self._running,
            parents=self._parents,
            runs=self._runs,
            group=group,
            notify=self.notify,
        )

    @property
    def bus(self) -> EventBus:
        return self.store.bus

    @property
    def results(self) -> ResultsFeed | None:
        """Told after each commit (hooks); set by the runtime when results features are on."""
        return self._runs.results

    @results.setter
    def results(self, feed: ResultsFeed | None) -> None:
        self._runs.results = feed

    @property
    def is_alive(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def running_count(self) -> int:
        return len(self._running)

    def notify(self) -> None:
        """Wake the claim loop: a job was queued or a slot freed."""
        self._wake.set()

    async def start(self) -> None:
        install_log_capture()
        settle_heap()
        self._loop_task = asyncio.create_task(self._loop(), name=f"worker {self.worker_id}")

    def cancel_local(self, job_id: str) -> bool:
        """Cancel a job this worker runs: async and process tasks at once, threads by flag."""
        running = self._running.get(job_id) or self._parents.waiting.get(job_id)
        if running is None:
            return False
        if running.context.cancel_requested:
            return True  # already asked (the API, NOTIFY and heartbeats may all deliver it)
        running.context.request_cancel()
        if running.task is not None and running.stoppable and not running.ended:
            running.task.cancel()
        return True

    async def stop(self) -> None:
        """Stop claiming; let running jobs finish within the grace period; hand back the rest."""
        self._stopping = True
        self._runs.stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        await self._claims.settled()  # jobs a claim in flight takes are held like the others
        held = [*self._running.values(), *self._parents.waiting.values()]
        tasks = [r.task for r in held if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
        leftover = [r for r in held if r.task is not None and not r.task.done() and not r.ended]
        if leftover:
            for running in leftover:
                running.released = True
                if running.task is not None and running.stoppable:
                    running.task.cancel()
            await self.store.release(self.worker_id, [r.job.id for r in leftover])
        released_ids = {r.job.id for r in leftover}
        recording = [t for job_id, t in self._runs.tasks.items() if job_id not in released_ids]
        if recording:
            # Results of attempts that ended are written before the worker goes; handed-back
            # jobs are not waited for (a sync task's thread cannot be stopped).
            await asyncio.wait(recording, timeout=self.config.shutdown_grace + 5)
        self._runs.executor.shutdown(wait=False, cancel_futures=True)
        if self._loop_task is not None:
            await self._guard(self.presence.stop)

    async def _loop(self) -> None:
        await self._guard(self.presence.register)
        await self._guard(self.upkeep.recover_dead_local_workers)
        loop = asyncio.get_running_loop()
        next_heartbeat = 0.0
        next_cleanup = 0.0
        while not self._stopping:
            self._wake.clear()
            now = loop.time()
            if now >= next_heartbeat:
                await self._upkeep()
                next_heartbeat = now + self.config.heartbeat_seconds
            if self.config.retention_seconds is not None and now >= next_cleanup:
                await self._guard(self.upkeep.cleanup)
                next_cleanup = now + self.config.retention_interval
            free = self._claims.free_slots()
            if free > 0:
                await self._guard(functools.partial(self._claims.claim, free))
            timeout = min(self.config.poll_interval, max(0.0, next_heartbeat - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _upkeep(self) -> None:
        upkeep = self.upkeep
        job_ids = [*self._running, *self._parents.waiting, *self._runs.recording]
        # Timed-out threads whose attempt ended: they keep a slot, not a lease.
        lingering = [job_id for job_id, r in self._running.items() if r.ended]
        heartbeat = functools.partial(upkeep.heartbeat, job_ids, lingering, self.cancel_local)
        await self._guard(heartbeat)
        await self._guard(functools.partial(self.presence.beat, len(self._running)))
        await self._guard(functools.partial(self.presence.recover_expired, upkeep.recover))
        await self._guard(upkeep.recover_dead_local_workers)
        await self._guard(upkeep.recover_lost)

    async def _guard(self, step: Callable[[], Awaitable[T]]) -> T | None:
        """Run one loop step; a database outage must not kill the loop."""
        try:
            return await step()
        except Exception:
            logger.exception("worker step failed; retrying", extra={"worker_id": self.worker_id})
            await asyncio.sleep(min(self.config.poll_interval, 1.0))
            return None

    def _ended(self, ends: Sequence[AttemptEnd], batch: Sequence[Recorded]) -> None:
        """A batch of attempts' ends committed: apply their effects together, then tell
        the results features (before anything a claim in the same transaction started)."""
        self.store.after_commit.apply_all(recorded.effects for recorded in batch)
        if self.results is not None:
            for end, recorded in zip(ends, batch, strict=True):
                if recorded.held:
                    retrying = isinstance(end.verdict, Retry)
                    self.results.attempt_recorded(end.job.id, retrying=retrying)
