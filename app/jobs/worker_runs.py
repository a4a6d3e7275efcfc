"""Running claimed jobs: one asyncio task per attempt runs the task, frees its slot, decides
once what the attempt means, and records that through the worker's group commit."""

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from app.core.clock import utcnow
from app.core.logging import bind
from app.db.batching import BatchWriter
from app.db.database import Database
from app.jobs.context import JobContext, ProgressUpdate
from app.jobs.flow_host import ParentParked, WaitingParents, WorkerFlows
from app.jobs.flow_runtime import FlowRuntime
from app.jobs.injectables import Injectables
from app.jobs.models import JobStatus
from app.jobs.outcomes import decide, not_storable_end, unstorable_reason
from app.jobs.repository import JobRepository
from app.jobs.results_feed import ResultsFeed
from app.jobs.runner import Outcome, error_record, run_task, runs_in_process
from app.jobs.sink import JobEventSink, current_sink
from app.jobs.store import AttemptEnd, JobStore, Recorded
from app.jobs.store.claimed import ClaimedJob
from app.jobs.worker_config import WorkerConfig
from app.tasks.registry import Registry, TaskDefinition

logger = logging.getLogger(__name__)


@dataclass
class RunningJob:
    job: ClaimedJob
    context: JobContext
    definition: TaskDefinition | None
    sink: JobEventSink
    # Whether cancelling its asyncio task stops the work (async or process tasks).
    stoppable: bool = False
    flows: FlowRuntime | None = None
    task: "asyncio.Task[None] | None" = None
    # The task's code returned: what is left is writing its end (and a timed-out thread).
    ended: bool = False
    released: bool = False


class JobRuns:
    """The attempts of one worker: those holding a slot (`running`), those whose end is being
    written (`recording`), and the asyncio task of each (`tasks`)."""

    def __init__(
        self,
        *,
        worker_id: str,
        config: WorkerConfig,
        registry: Registry,
        injectables: Injectables,
        database: Database,
        store: JobStore,
        executor: Executor,
        ends: BatchWriter[AttemptEnd, Recorded],
        running: dict[str, RunningJob],
        parents: WaitingParents[RunningJob],
        flows: WorkerFlows,
        wake: Callable[[], None],
    ) -> None:
        self.worker_id = worker_id
        self.config = config
        self.registry = registry
        self.injectables = injectables
        self.database = database
        self.store = store
        self.executor = executor
        self.ends = ends
        self.running = running
        self.parents = parents
        self.flows = flows
        self.wake = wake
        self.recording: dict[str, ClaimedJob] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.results: ResultsFeed | None = None
        self.stopping = False

    def start(self, job: ClaimedJob) -> None:
        """Run a claimed job's attempt in its own asyncio task; it holds a slot until it ends."""
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
        running = RunningJob(job, context, definition, sink, stoppable)
        running.flows = self.flows.runtime_for(job, context)
        context.bind_flows(running.flows)
        self.running[job.id] = running
        task = asyncio.create_task(self._run(running), name=f"job {job.id}")
        running.task = task
        self.tasks[job.id] = task
        task.add_done_callback(functools.partial(self._forget, running))

    def _forget(self, running: RunningJob, _task: "asyncio.Task[None]") -> None:
        """The attempt's task is done; its slot is free even if it was cancelled before it
        started (its coroutine then never ran its own cleanup)."""
        job_id = running.job.id
        self.tasks.pop(job_id, None)
        self.recording.pop(job_id, None)
        self._wake_if_freed(job_id)
        running.context.detach_flows()

    def free(self, job_id: str) -> bool:
        """Give back the slot of `job_id`; whether it held one (or waited as a parent)."""
        return self.running.pop(job_id, None) is not None or self.parents.discard(job_id)

    async def _run(self, running: RunningJob) -> None:
        """The attempt, then its end: free the slot, decide once, record that."""
        job = running.job
        try:
            try:
                outcome = await self._attempt(running)
            except asyncio.CancelledError:
                if running.released:
                    return
                raise
            except ParentParked:
                # No end: the job waits without a worker; the fan-in re-queues it.
                await running.sink.close()
                return
            running.ended = True
            if running.released:
                return
            await self._record(running, outcome)
        except Exception:
            logger.exception("could not record job outcome", extra={"job_id": job.id})
        finally:
            self.recording.pop(job.id, None)
            self._wake_if_freed(job.id)

    async def _attempt(self, running: RunningJob) -> Outcome:
        job = running.job
        # Runs in this task's own context: log records of the task go to its sink (until the
        # attempt ends), and carry the job's ids (and the id of the request that created it).
        sink = current_sink.set(running.sink)
        bind(job_id=job.id, task_name=job.task_name, request_id=job.request_id)
        try:
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
                self.executor,
                timeout=job.timeout_seconds,
                bounds=self.config.bounds,
                default_executor=self.config.sync_executor,
            )
        finally:
            current_sink.reset(sink)

    async def _record(self, running: RunningJob, outcome: Outcome) -> None:
        job = running.job
        if running.flows is not None:
            await running.flows.settle_quietly()
        now = utcnow()
        verdict = decide(
            job,
            running.definition,
            outcome,
            cancel_requested=running.context.cancel_requested,
            now=now,
            draw=random.random(),  # noqa: S311 - backoff jitter
        )
        if outcome.lingering is None:
            self._wake_if_freed(job.id)
        self.recording[job.id] = job
        await running.sink.close()
        seconds = (now - job.started_at).total_seconds()
        await self._persist(AttemptEnd(self.worker_id, job, verdict, outcome.result, seconds))
        self.recording.pop(job.id, None)
        if outcome.lingering is not None:
            # A timed-out thread keeps its slot until it really ends.
            await asyncio.wait([outcome.lingering])

    def _wake_if_freed(self, job_id: str) -> None:
        if self.free(job_id):
            self.wake()

    async def _persist(self, end: AttemptEnd) -> None:
        """Write the attempt's end. A value the database refuses ends the job failed
        `ResultNotStorable`; a database that cannot be reached is retried until it can.
        The group commit applies the batch's effects (and tells the results features) once
        it has committed."""
        delay = 0.1
        converted = False
        while True:
            try:
                await self.ends.submit(end)
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
                if self.stopping:
                    raise
                logger.warning("storing job result failed; retrying", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            return

    async def _log_usage_of(self, job_id: str) -> tuple[int, int]:
        async with self.database.read_session() as session:
            return await JobRepository(session).log_usage(job_id)

    async def _write_events(
        self, job_id: str, progress: ProgressUpdate | None, events: list[tuple[str, Any]]
    ) -> None:
        await self.store.append(job_id, events, progress)
