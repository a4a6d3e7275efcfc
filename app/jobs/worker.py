"""The worker: claims jobs from the job table and runs them under a concurrency limit."""

import asyncio
import contextlib
import functools
import gc
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.logging import bind
from app.core.metrics import Metrics
from app.db.batching import GroupCommit
from app.db.database import Database
from app.jobs.bounds import Bounds
from app.jobs.context import JobContext, ProgressUpdate
from app.jobs.decisions import Retry
from app.jobs.events import EventBus
from app.jobs.flow_host import ParentParked, WaitingParents, WorkerFlows
from app.jobs.flow_runtime import FlowRuntime
from app.jobs.injectables import Injectables
from app.jobs.limits import ConcurrencyLimits
from app.jobs.models import JobStatus
from app.jobs.outcomes import decide, not_storable_end, unstorable_reason
from app.jobs.repository import JobRepository
from app.jobs.results_feed import ResultsFeed
from app.jobs.runner import ExecutorName, Outcome, error_record, run_task, runs_in_process
from app.jobs.sink import JobEventSink, current_sink, install_log_capture
from app.jobs.store import AfterCommit, AttemptEnd, Effects, JobStore, Recorded
from app.jobs.store.claimed import ClaimedJob
from app.jobs.worker_ids import is_dead_local_worker, make_worker_id
from app.tasks.registry import Registry, TaskDefinition, TaskRegistry
from app.workers.presence import WorkerPresence

logger = logging.getLogger(__name__)


def settle_heap() -> None:
    """Once per process, when the worker starts: collect what start-up left, then move
    every object alive (modules, registries, compiled statements) out of the cyclic
    collector's reach. Without it each full collection walks the whole service's heap
    again, which cost more than running the jobs themselves."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()

T = TypeVar("T")

# Jobs `JobStore.recover_lost` resolves per call, and calls per expired-worker check.
RECOVER_BATCH = 100
RECOVER_ROUNDS = 20


@dataclass
class WorkerConfig:
    concurrency: int
    poll_interval: float = 1.0
    lease_seconds: float = 30.0
    shutdown_grace: float = 10.0
    tag_limits: Mapping[str, int] = field(default_factory=dict)
    retention_seconds: float | None = None
    retention_batch: int = 500
    retention_interval: float = 60.0
    max_log_lines: int = 1000
    bounds: Bounds = field(default_factory=Bounds)
    sync_executor: ExecutorName = "thread"
    # Flows: children per parent, and parents that may wait in memory at once (then parked).
    max_children: int = 10_000
    max_waiting_parents: int = 1000
    # A worker whose heartbeat row is older than this is dead (None: the lease).
    worker_timeout: float | None = None

    @property
    def heartbeat_seconds(self) -> float:
        """Three heartbeats fit in both the lease and the worker timeout."""
        return min(self.lease_seconds, self.worker_timeout or self.lease_seconds) / 3


@dataclass
class _Running:
    job: ClaimedJob
    context: JobContext
    definition: TaskDefinition | None
    sink: JobEventSink
    # Whether cancelling its asyncio task stops the work (async or process tasks).
    stoppable: bool = False
    flows: FlowRuntime | None = None
    task: "asyncio.Task[Outcome] | None" = None
    released: bool = False


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
        # Jobs holding a concurrency slot: executing, or a timed-out thread still running.
        self._running: dict[str, _Running] = {}
        # Jobs whose attempt ended and whose result is being written (still leased).
        self._recording: dict[str, ClaimedJob] = {}
        self._finishers: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        # Parents waiting for their children hold no slot (see `app.jobs.flows`).
        self._parents = WaitingParents(self._running, self._wake.set)
        self._flows = WorkerFlows(
            self.store,
            injectables.scheduler,
            self._parents,
            worker_id=self.worker_id,
            max_children=config.max_children,
            max_waiting=config.max_waiting_parents,
        )
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        # A sync parent waiting for its children blocks its thread (not its slot).
        self._executor = ThreadPoolExecutor(
            config.concurrency + config.max_waiting_parents, thread_name_prefix="taskexec-sync"
        )
        # Finished attempts and new claims share transactions (group commit), ends first.
        group = GroupCommit(database)
        self._ends = group.writer(JobStore.finish_in)
        self._claims = group.writer(self._claim_in)
        # Told after each commit (hooks); set by the runtime when results features are on.
        self.results: ResultsFeed | None = None

    @property
    def bus(self) -> EventBus:
        return self.store.bus

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
        if running.task is not None and running.stoppable:
            running.task.cancel()
        return True

    async def stop(self) -> None:
        """Stop claiming; let running jobs finish within the grace period; hand back the rest."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        held = [*self._running.values(), *self._parents.waiting.values()]
        tasks = [r.task for r in held if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
        leftover = [r for r in held if r.task is not None and not r.task.done()]
        if leftover:
            for running in leftover:
                running.released = True
                if running.task is not None and running.stoppable:
                    running.task.cancel()
            await self.store.release(self.worker_id, [r.job.id for r in leftover])
        released_ids = {r.job.id for r in leftover}
        recording = [f for job_id, f in self._finishers.items() if job_id not in released_ids]
        if recording:
            # Results of attempts that ended are written before the worker goes; handed-back
            # jobs are not waited for (a sync task's thread cannot be stopped).
            await asyncio.wait(recording, timeout=self.config.shutdown_grace + 5)
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._loop_task is not None:
            await self._guard(self.presence.stop)

    async def _loop(self) -> None:
        await self._guard(self.presence.register)
        await self._guard(self._recover_dead_local_workers)
        loop = asyncio.get_running_loop()
        heartbeat_every = self.config.heartbeat_seconds
        next_heartbeat = 0.0
        next_cleanup = 0.0
        while not self._stopping:
            self._wake.clear()
            now = loop.time()
            if now >= next_heartbeat:
                await self._guard(self._heartbeat)
                await self._guard(functools.partial(self.presence.beat, len(self._running)))
                await self._guard(functools.partial(self.presence.recover_expired, self._recover))
                await self._guard(self._recover_dead_local_workers)
                await self._guard(self._recover_lost)
                next_heartbeat = now + heartbeat_every
            if self.config.retention_seconds is not None and now >= next_cleanup:
                await self._guard(self._cleanup)
                next_cleanup = now + self.config.retention_interval
            free = self.config.concurrency - len(self._running)
            # Woken parents first: their children are done, they only need a slot.
            free -= self._parents.grant(free)
            if free > 0:
                for job in await self._guard(functools.partial(self._claim, free)) or []:
                    self._start(job)
            timeout = min(self.config.poll_interval, max(0.0, next_heartbeat - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _guard(self, step: Callable[[], Awaitable[T]]) -> T | None:
        """Run one loop step; a database outage must not kill the loop."""
        try:
            return await step()
        except Exception:
            logger.exception("worker step failed; retrying", extra={"worker_id": self.worker_id})
            await asyncio.sleep(min(self.config.poll_interval, 1.0))
            return None

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        claimed, effects = await self._claims.submit(limit)
        self.store.after_commit.apply(effects)
        if self.results is not None:
            self.results.jobs_started(job.id for job in claimed)
        return claimed

    async def _claim_in(
        self, session: AsyncSession, limits: Sequence[int]
    ) -> list[tuple[list[ClaimedJob], Effects]]:
        """Claims of this worker (one per loop turn; usually one per transaction)."""
        concurrency = ConcurrencyLimits.from_registry(self.registry, self.config.tag_limits)
        names = self.registry.names()
        return [
            await JobStore.claim_in(
                session,
                worker_id=self.worker_id,
                limit=limit,
                lease_seconds=self.config.lease_seconds,
                limits=concurrency,
                task_names=names,
            )
            for limit in limits
        ]

    def _start(self, job: ClaimedJob) -> None:
        sink = JobEventSink(
            asyncio.get_running_loop(),
            functools.partial(self._write_events, job.id),
            max_log_lines=self.config.max_log_lines,
            bounds=self.config.bounds,
        )
        context = JobContext(
            job_id=job.id,
            task_name=job.task_name,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            params=job.params,
            on_progress=sink.progress,
            scheduled_for=job.scheduled_for,
        )
        definition = self.registry.find(job.task_name)
        stoppable = definition is not None and (
            definition.is_async or runs_in_process(definition, self.config.sync_executor)
        )
        running = _Running(job, context, definition, sink, stoppable)
        running.flows = self._flows.runtime_for(job, context)
        context.bind_flows(running.flows)
        self._running[job.id] = running
        running.task = asyncio.create_task(self._attempt(running), name=f"job {job.id}")
        finisher = asyncio.create_task(self._finish(running), name=f"finish {job.id}")
        self._finishers[job.id] = finisher
        finisher.add_done_callback(lambda _: self._finishers.pop(job.id, None))

    async def _attempt(self, running: _Running) -> Outcome:
        job = running.job
        # Runs in this task's own context: log records of the task go to its sink, and carry
        # the job's ids (and the id of the request that created it).
        current_sink.set(running.sink)
        bind(job_id=job.id, task_name=job.task_name, request_id=job.request_id)
        if job.attempts > 1:
            running.sink.counted_earlier(*await self._log_usage_of(job.id))
        if running.definition is None:
            # Registered when it was claimed, gone since (registries are per process).
            exc = LookupError(f"task {job.task_name!r} is not registered in this worker")
            return Outcome(JobStatus.FAILED, error=error_record(exc), exception=exc)
        return await run_task(
            running.definition,
            job.params,
            running.context,
            self.injectables,
            self.database.session,
            self._executor,
            timeout=job.timeout_seconds,
            bounds=self.config.bounds,
            default_executor=self.config.sync_executor,
        )

    async def _finish(self, running: _Running) -> None:
        """Wait for the attempt, free its slot, decide once what it means, record that."""
        job = running.job
        try:
            if running.task is None:
                return
            try:
                outcome = await running.task
            except asyncio.CancelledError:
                if running.released:
                    return
                raise
            except ParentParked:
                # No end: the job waits without a worker; the fan-in re-queues it.
                await running.sink.close()
                return
            if running.released:
                return
            if running.flows is not None:
                await running.flows.settle_quietly()
            verdict = decide(
                job,
                running.definition,
                outcome,
                cancel_requested=running.context.cancel_requested,
                now=utcnow(),
                draw=random.random(),  # noqa: S311 - backoff jitter
            )
            if outcome.lingering is None:
                self._free(job.id)
            self._recording[job.id] = job
            await running.sink.close()
            seconds = None
            if job.started_at is not None:
                seconds = (utcnow() - job.started_at).total_seconds()
            end = AttemptEnd(self.worker_id, job, verdict, outcome.result, seconds)
            await self._persist(end)
            self._recording.pop(job.id, None)
            if outcome.lingering is not None:
                # A timed-out thread keeps its slot until it really ends.
                await asyncio.wait([outcome.lingering])
        except Exception:
            logger.exception("could not record job outcome", extra={"job_id": job.id})
        finally:
            self._recording.pop(job.id, None)
            self._free(job.id)
            running.context.detach_flows()

    async def _log_usage_of(self, job_id: str) -> tuple[int, int]:
        async with self.database.read_session() as session:
            return await JobRepository(session).log_usage(job_id)

    def _free(self, job_id: str) -> None:
        if self._running.pop(job_id, None) is not None or self._parents.discard(job_id):
            self._wake.set()

    async def _persist(self, end: AttemptEnd) -> None:
        """Write the attempt's end. A value the database refuses ends the job failed
        `ResultNotStorable`; a database that cannot be reached is retried until it can."""
        delay = 0.1
        converted = False
        while True:
            try:
                recorded: Recorded = await self._ends.submit(end)
            except Exception as exc:
                reason = unstorable_reason(exc)
                if reason is not None and not converted:
                    converted = True
                    logger.warning(
                        "the database refused a job's result; failing the job",
                        extra={"job_id": end.job.id, "error": reason},
                    )
                    end = not_storable_end(end, reason)
                    continue
                if self._stopping:
                    raise
                logger.warning("storing job result failed; retrying", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.store.after_commit.apply(recorded.effects)
            if self.results is not None and recorded.held:
                retrying = isinstance(end.verdict, Retry)
                self.results.attempt_recorded(end.job.id, retrying=retrying)
            return

    async def _write_events(
        self, job_id: str, progress: ProgressUpdate | None, events: list[tuple[str, Any]]
    ) -> None:
        await self.store.append(job_id, events, progress)

    async def _heartbeat(self) -> None:
        job_ids = [*self._running, *self._parents.waiting, *self._recording]
        if not job_ids:
            return
        held, canceled = await self.store.renew(self.worker_id, job_ids, self.config.lease_seconds)
        for job_id in canceled:
            self.cancel_local(job_id)
        for job_id in set(job_ids) - held - set(self._lingering_ids()):
            logger.warning("lost the lease of a running job", extra={"job_id": job_id})

    def _lingering_ids(self) -> list[str]:
        return [job_id for job_id, r in self._running.items() if r.task and r.task.done()]

    async def _recover_dead_local_workers(self) -> None:
        async with self.database.read_session() as session:
            worker_ids = await JobRepository(session).running_worker_ids()
        dead = [w for w in worker_ids if w != self.worker_id and is_dead_local_worker(w)]
        if dead:
            await self.store.recover_lost(dead)

    async def _recover(self, dead_worker_ids: Sequence[str]) -> None:
        """Re-queue (or end) every job of these dead workers, a batch at a time."""
        for _ in range(RECOVER_ROUNDS):
            effects = await self.store.recover_lost(dead_worker_ids)
            if len(effects.changed) < RECOVER_BATCH:
                return

    async def _recover_lost(self) -> None:
        """Re-queue or end jobs whose worker died (their lease expired)."""
        await self.store.recover_lost()

    async def _cleanup(self) -> None:
        """Delete finished jobs (and their artifacts) past the retention age, in batches."""
        assert self.config.retention_seconds is not None  # noqa: S101 - checked by the loop
        cutoff = utcnow() - timedelta(seconds=self.config.retention_seconds)
        total = 0
        for _ in range(20):
            deleted = await self.store.delete_finished_before(cutoff, self.config.retention_batch)
            total += deleted
            if deleted < self.config.retention_batch:
                break
        if total:
            logger.info("retention cleanup", extra={"deleted_jobs": total})
