"""The worker: claims jobs from the job table and runs them under a concurrency limit."""

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import new_id, utcnow
from app.core.logging import bind
from app.core.metrics import Metrics
from app.db.batching import BatchWriter
from app.db.database import Database
from app.jobs.context import JobContext, ProgressUpdate
from app.jobs.events import EventBus, EventType, append_events
from app.jobs.limits import ConcurrencyLimits, claim_jobs
from app.jobs.models import Job, JobStatus
from app.jobs.notify import notify_new_jobs
from app.jobs.outcomes import (
    AttemptEnd,
    honour_cancel_request,
    record_attempts,
    recover_lost_job,
    should_retry,
)
from app.jobs.repository import JobRepository
from app.jobs.results_feed import ResultsFeed
from app.jobs.runner import Outcome, error_record, run_task
from app.jobs.sink import JobEventSink, current_sink, install_log_capture
from app.tasks.registry import TaskDefinition, TaskRegistry

logger = logging.getLogger(__name__)

T = TypeVar("T")


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


@dataclass(frozen=True)
class _Claim:
    limit: int


@dataclass
class _Running:
    job: Job
    context: JobContext
    definition: TaskDefinition | None
    sink: JobEventSink
    task: "asyncio.Task[Outcome] | None" = None
    released: bool = False

    @property
    def stoppable(self) -> bool:
        """Whether cancelling its asyncio task stops the work (async or process tasks)."""
        definition = self.definition
        return definition is not None and (
            definition.is_async or definition.options.executor == "process"
        )


def make_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"


class Worker:
    """Claims pending jobs and runs them: async tasks on the loop, sync tasks in threads (or a
    child process when the task asks for one), never more than `concurrency` at once.

    Nothing about a job lives only here: each claim, lease renewal and result is written to the
    job table, so another worker (or this one after a restart) can finish what this one could not.
    """

    def __init__(
        self,
        database: Database,
        config: WorkerConfig,
        *,
        shared: dict[type[Any], Any],
        registry: type[TaskRegistry] = TaskRegistry,
        worker_id: str | None = None,
        bus: EventBus | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.database = database
        self.bus = bus or EventBus()
        self.metrics = metrics
        self.config = config
        self.registry = registry
        self.shared = shared
        self.worker_id = worker_id or make_worker_id()
        # Jobs holding a concurrency slot: executing, or a timed-out thread still running.
        self._running: dict[str, _Running] = {}
        # Jobs whose attempt ended and whose result is being written (still leased).
        self._recording: dict[str, Job] = {}
        self._finishers: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(config.concurrency, thread_name_prefix="taskexec-sync")
        # Finished attempts and new claims share transactions (group commit).
        self._writer: BatchWriter[AttemptEnd | _Claim, Any] = BatchWriter(database, self._write)
        self.results: ResultsFeed | None = None  # results: hooks after commits

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
        _LIVE_WORKERS.add(self.worker_id)
        self._loop_task = asyncio.create_task(self._loop(), name=f"worker {self.worker_id}")

    def cancel_local(self, job_id: str) -> bool:
        """Cancel a job this worker runs: async and process tasks at once, threads by flag."""
        running = self._running.get(job_id)
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
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
        leftover = [r for r in self._running.values() if r.task is not None and not r.task.done()]
        if leftover:
            for running in leftover:
                running.released = True
                if running.task is not None and running.stoppable:
                    running.task.cancel()
            job_ids = [r.job.id for r in leftover]
            async with self.database.transaction() as session:
                released = await JobRepository(session).release(
                    worker_id=self.worker_id, job_ids=job_ids, now=utcnow()
                )
                for job_id in job_ids:
                    await append_events(session, job_id, [(EventType.RELEASED, {})])
                await notify_new_jobs(session)
            self.bus.publish(job_ids)
            logger.warning("handed back unfinished jobs", extra={"count": released})
        released_ids = {r.job.id for r in leftover}
        recording = [f for job_id, f in self._finishers.items() if job_id not in released_ids]
        if recording:
            # Results of attempts that ended are written before the worker goes; handed-back
            # jobs are not waited for (a sync task's thread cannot be stopped).
            await asyncio.wait(recording, timeout=self.config.shutdown_grace + 5)
        self._executor.shutdown(wait=False, cancel_futures=True)
        _LIVE_WORKERS.discard(self.worker_id)

    async def _loop(self) -> None:
        await self._guard(self._recover_dead_local_workers)
        loop = asyncio.get_running_loop()
        heartbeat_every = self.config.lease_seconds / 3
        next_heartbeat = 0.0
        next_cleanup = 0.0
        while not self._stopping:
            self._wake.clear()
            now = loop.time()
            if now >= next_heartbeat:
                await self._guard(self._heartbeat)
                await self._guard(self._recover_dead_local_workers)
                await self._guard(self._recover_lost)
                next_heartbeat = now + heartbeat_every
            if self.config.retention_seconds is not None and now >= next_cleanup:
                await self._guard(self._cleanup)
                next_cleanup = now + self.config.retention_interval
            free = self.config.concurrency - len(self._running)
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

    async def _claim(self, limit: int) -> list[Job]:
        claimed: list[Job] = await self._writer.submit(_Claim(limit))
        self.bus.publish(job.id for job in claimed)
        if self.results is not None:  # results: on_job_started
            self.results.jobs_started(job.id for job in claimed)
        return claimed

    async def _write(
        self, session: AsyncSession, items: Sequence[AttemptEnd | _Claim]
    ) -> list[Any]:
        """One transaction: record finished attempts, then claim new jobs."""
        ends = [item for item in items if isinstance(item, AttemptEnd)]
        held = iter(await record_attempts(session, ends) if ends else [])
        results: list[Any] = []
        for item in items:
            if isinstance(item, AttemptEnd):
                results.append(next(held))
                continue
            results.append(
                await claim_jobs(
                    session,
                    worker_id=self.worker_id,
                    limit=item.limit,
                    lease_seconds=self.config.lease_seconds,
                    limits=ConcurrencyLimits.from_registry(self.registry, self.config.tag_limits),
                )
            )
        return results

    def _start(self, job: Job) -> None:
        sink = JobEventSink(
            asyncio.get_running_loop(),
            functools.partial(self._write_events, job.id),
            max_log_lines=self.config.max_log_lines,
        )
        context = JobContext(
            job_id=job.id,
            task_name=job.task_name,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            params=job.params,
            on_progress=sink.progress,
        )
        running = _Running(job, context, self.registry.find(job.task_name), sink)
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
            running.sink.counted_earlier(await self._log_lines_of(job.id))
        if running.definition is None:
            exc = LookupError(f"task {job.task_name!r} is not registered in this worker")
            return Outcome(JobStatus.FAILED, error=error_record(exc), exception=exc)
        return await run_task(
            running.definition,
            job.params,
            running.context,
            self.shared,
            self.database.session,
            self._executor,
            timeout=job.timeout_seconds,
        )

    async def _finish(self, running: _Running) -> None:
        """Wait for the attempt, free its slot, record how it ended."""
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
            if running.released:
                return
            outcome = honour_cancel_request(running.context, outcome)
            self._observe(job, running.definition, outcome)
            if outcome.lingering is None:
                self._free(job.id)
            self._recording[job.id] = job
            await running.sink.close()
            await self._persist(AttemptEnd(self.worker_id, job, running.definition, outcome))
            self._recording.pop(job.id, None)
            if outcome.lingering is not None:
                # A timed-out thread keeps its slot until it really ends.
                await asyncio.wait([outcome.lingering])
        except Exception:
            logger.exception("could not record job outcome", extra={"job_id": job.id})
        finally:
            self._recording.pop(job.id, None)
            self._free(job.id)

    async def _log_lines_of(self, job_id: str) -> int:
        async with self.database.read_session() as session:
            _, total = await JobRepository(session).events_page(
                job_id, types=[EventType.LOG.value], limit=1, offset=0
            )
        return total

    def _observe(self, job: Job, definition: TaskDefinition | None, outcome: Outcome) -> None:
        if self.metrics is None:
            return
        if job.started_at is not None:
            seconds = (utcnow() - job.started_at).total_seconds()
            self.metrics.attempt_seconds.labels(job.task_name).observe(seconds)
        if not should_retry(job, definition, outcome):
            self.metrics.jobs_finished.labels(job.task_name, outcome.status.value).inc()

    def _free(self, job_id: str) -> None:
        if self._running.pop(job_id, None) is not None:
            self._wake.set()

    async def _persist(self, end: AttemptEnd) -> None:
        """Write the attempt's end; retry the write while the database is unreachable."""
        delay = 0.1
        while True:
            try:
                held = await self._writer.submit(end)
                self.bus.publish([end.job.id])
                if self.results is not None and held:  # results: on_job_finished / retrying
                    retrying = should_retry(end.job, end.definition, end.outcome)
                    self.results.attempt_recorded(end.job.id, retrying=retrying)
                # A recorded end can free a task or tag limit: look for work again.
                self._wake.set()
                return
            except Exception:
                if self._stopping:
                    raise
                logger.warning("storing job result failed; retrying", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _write_events(
        self, job_id: str, progress: ProgressUpdate | None, events: list[tuple[str, Any]]
    ) -> None:
        async with self.database.transaction() as session:
            if progress is not None:
                await JobRepository(session).set_progress(
                    job_id, progress.fraction, progress.message
                )
            await append_events(session, job_id, events)
        self.bus.publish([job_id])

    async def _heartbeat(self) -> None:
        job_ids = [*self._running, *self._recording]
        if not job_ids:
            return
        lease_until = utcnow() + timedelta(seconds=self.config.lease_seconds)
        async with self.database.transaction() as session:
            held, canceled = await JobRepository(session).renew_leases(
                worker_id=self.worker_id, job_ids=job_ids, lease_until=lease_until
            )
        for job_id in canceled:
            self.cancel_local(job_id)
        for job_id in set(job_ids) - held - set(self._lingering_ids()):
            logger.warning("lost the lease of a running job", extra={"job_id": job_id})

    def _lingering_ids(self) -> list[str]:
        return [job_id for job_id, r in self._running.items() if r.task and r.task.done()]

    async def _recover_dead_local_workers(self) -> None:
        async with self.database.read_session() as session:
            worker_ids = await JobRepository(session).running_worker_ids()
        dead = [w for w in worker_ids if w != self.worker_id and _is_dead_local_worker(w)]
        if dead:
            await self._recover_lost(dead)

    async def _recover_lost(self, dead_worker_ids: list[str] | None = None) -> None:
        """Requeue or fail jobs whose worker died (expired lease, or a dead local process)."""
        now = utcnow()
        requeued = False
        async with self.database.transaction() as session:
            lost = await JobRepository(session).lost(now=now, worker_ids=dead_worker_ids or [])
            for job in lost:
                if recover_lost_job(session, job, now):
                    requeued = True
                elif self.metrics is not None:
                    self.metrics.jobs_finished.labels(job.task_name, job.status).inc()
            if requeued:
                await notify_new_jobs(session)
            resolved = [job.id for job in lost]
        self.bus.publish(resolved)
        if requeued:
            self._wake.set()

    async def _cleanup(self) -> None:
        """Delete finished jobs (and their artifacts) past the retention age, in batches."""
        assert self.config.retention_seconds is not None  # noqa: S101 - checked by the loop
        cutoff = utcnow() - timedelta(seconds=self.config.retention_seconds)
        total = 0
        for _ in range(20):
            async with self.database.transaction() as session:
                deleted = await JobRepository(session).delete_finished_before(
                    cutoff, self.config.retention_batch
                )
            total += deleted
            if deleted < self.config.retention_batch:
                break
        if total:
            logger.info("retention cleanup", extra={"deleted_jobs": total})


# Workers running in this process (a process may run several, e.g. in tests).
_LIVE_WORKERS: set[str] = set()


def _is_dead_local_worker(worker_id: str) -> bool:
    """A worker id names a dead process on this host: its pid is gone, or is this process's
    although no worker of this process has that id (a restart that got the same pid)."""
    if worker_id in _LIVE_WORKERS:
        return False
    host, _, rest = worker_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
