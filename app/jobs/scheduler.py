"""`JobScheduler`: submit, inspect, cancel and delete jobs. The API and tasks both use it."""

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict, Unpack

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import isoformat, new_id, utcnow
from app.core.errors import ConflictError, NotFoundError
from app.core.logging import context_value
from app.core.metrics import Metrics
from app.db.batching import BatchWriter
from app.db.database import Database, ambient_session
from app.jobs.cache import CacheMode, admit, plan_cache
from app.jobs.events import EventBus, EventType, event_row, insert_events
from app.jobs.live import wait_until
from app.jobs.models import Job, JobStatus
from app.jobs.notify import notify_cancel, notify_new_jobs
from app.jobs.repository import JobRepository
from app.jobs.results_feed import ResultsFeed
from app.jobs.schemas import AttemptRead, JobDetail, JobRead
from app.tasks.registry import TaskRegistry

logger = logging.getLogger(__name__)


class SubmitOptions(TypedDict, total=False):
    """Per-job overrides of a task's registered options."""

    priority: int | None
    delay: float | None
    run_at: datetime | None
    timeout: float | None
    retries: int | None
    idempotency_key: str | None
    cache: CacheMode | None
    callback_url: str | None


class JobScheduler:
    """Queues jobs in the job table and tells the local worker (if any) about them.

    Tasks can receive it by annotation to queue follow-up jobs:
    `async def fan_out(scheduler: JobScheduler) -> ...`.
    """

    def __init__(
        self,
        database: Database,
        *,
        max_concurrency: int,
        registry: type[TaskRegistry] = TaskRegistry,
        bus: EventBus | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.database = database
        self.max_concurrency = max_concurrency
        self.registry = registry
        self.bus = bus or EventBus()
        self.metrics = metrics
        self.worker: Any = None  # the embedded Worker, attached by the app's lifespan
        self.results = ResultsFeed(metrics)  # results: cache counters, hooks, callback hosts
        self._inserts: BatchWriter[Job, None] = BatchWriter(database, _insert_jobs)

    async def submit(
        self,
        task_name: str,
        params: dict[str, Any] | None = None,
        **options: Unpack[SubmitOptions],
    ) -> JobRead:
        """Validate `params` against the task and queue a job.

        Options left out (or None) come from the task's registration. Raises `NotFoundError`
        for an unknown task, `ValidationFailedError` for bad params (nothing invalid is
        queued), and `ConflictError` when `idempotency_key` names a job with other params.
        """
        job, _ = await self.enqueue(task_name, params, **options)
        return job

    async def enqueue(
        self,
        task_name: str,
        params: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        **options: Unpack[SubmitOptions],
    ) -> tuple[JobRead, bool]:
        """`submit`, also telling whether a job was created (False: an idempotent replay)."""
        definition = self.registry.find(task_name)
        if definition is None:
            raise NotFoundError(f"Task {task_name!r} is not registered.")
        params = params or {}
        definition.validate_params(params)
        request_hash = _request_hash(task_name, params)
        priority, retries = options.get("priority"), options.get("retries")
        delay, run_at = options.get("delay"), options.get("run_at")
        timeout, idempotency_key = options.get("timeout"), options.get("idempotency_key")
        if idempotency_key is not None:
            existing = await self._replay(idempotency_key, request_hash)
            if existing is not None:
                return existing, False
        defaults = definition.options
        now = utcnow()
        job = Job(
            id=new_id(),
            task_name=task_name,
            status=JobStatus.PENDING,
            params=params,
            priority=defaults.priority if priority is None else priority,
            run_at=run_at or now + timedelta(seconds=delay or 0.0),
            created_at=now,
            attempts=0,
            max_attempts=(defaults.retries if retries is None else retries) + 1,
            timeout_seconds=defaults.timeout if timeout is None else timeout,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            event_seq=1,
            # A job queued by a running task inherits the request id of that task's job.
            request_id=request_id or context_value("request_id"),
        )
        # results: callback outbox and result cache (app/jobs/cache.py, app/jobs/callbacks.py)
        job.callback_url = self.results.accept_callback_url(options.get("callback_url"))
        plan = plan_cache(definition, params, options.get("cache"))
        try:
            session = ambient_session.get()
            if plan is not None or job.callback_url is not None:
                admitted = await admit(self.database, job, plan, _insert_jobs)
                self.results.admitted(admitted, self.bus)
                if admitted.job is not job or admitted.outcome == "hit":
                    return JobRead.from_job(admitted.job), admitted.created
            elif session is None:
                await self._inserts.submit(job)
            else:
                # Queued by a task holding a session: part of its transaction (an outbox).
                async with session.begin_nested():
                    await _insert_jobs(session, [job])
        except IntegrityError:
            # Another request with the same key won the race.
            if idempotency_key is None:
                raise
            existing = await self._replay(idempotency_key, request_hash)
            if existing is None:
                raise
            return existing, False
        self._notify_worker()
        self.bus.publish([job.id])
        if self.metrics is not None:
            self.metrics.jobs_submitted.labels(task_name).inc()
        logger.info("job queued", extra={"job_id": job.id, "task_name": task_name})
        return JobRead.from_job(job), True

    async def _replay(self, idempotency_key: str, request_hash: str) -> JobRead | None:
        async with self.database.read_session() as session:
            job = await JobRepository(session).get_by_idempotency_key(idempotency_key)
        if job is None:
            return None
        if job.request_hash != request_hash:
            raise ConflictError(
                f"Idempotency key {idempotency_key!r} was used for job {job.id} with a "
                "different task or params."
            )
        return JobRead.from_job(job)

    async def get(self, job_id: str) -> JobRead:
        async with self.database.read_session() as session:
            job = await JobRepository(session).get(job_id)
        if job is None:
            raise NotFoundError(f"Job {job_id} does not exist.")
        return JobRead.from_job(job)

    async def get_detail(self, job_id: str) -> JobDetail:
        """The job with its attempt history."""
        async with self.database.read_session() as session:
            repo = JobRepository(session)
            job = await repo.get(job_id)
            if job is None:
                raise NotFoundError(f"Job {job_id} does not exist.")
            history = [AttemptRead.model_validate(row) for row in await repo.attempts_of(job_id)]
        return JobDetail(**JobRead.from_job(job).model_dump(), attempt_history=history)

    async def cancel(self, job_id: str) -> JobRead:
        """Cancel a pending job at once, or ask the worker running it to stop.

        A finished job cannot be canceled (`ConflictError`).
        """
        now = utcnow()
        async with self.database.transaction() as session:
            job = await JobRepository(session).get(job_id, for_update=True)
            if job is None:
                raise NotFoundError(f"Job {job_id} does not exist.")
            if JobStatus(job.status).is_terminal:
                raise ConflictError(f"Job {job_id} is already {job.status}.")
            job.event_seq += 1
            if job.status == JobStatus.PENDING:
                job.status = JobStatus.CANCELED
                job.finished_at = now
                job.error = {"type": "JobCancelledError", "message": "canceled before it started"}
                event = EventType.CANCELED
            else:
                # Until the worker has stopped it; a sync task's thread may take a while.
                job.status = JobStatus.CANCELING
                await notify_cancel(session, job.id)
                event = EventType.CANCEL_REQUESTED
            job.cancel_requested_at = job.cancel_requested_at or now
            data = {"status": job.status, "attempt": job.attempts, "error": job.error}
            await insert_events(session, [event_row(job.id, job.event_seq, event, data, now)])
            await session.flush()
            read = JobRead.from_job(job)
        self.bus.publish([job_id])
        if read.status == JobStatus.CANCELED and self.metrics is not None:
            self.metrics.jobs_finished.labels(read.task_name, read.status.value).inc()
        if read.status == JobStatus.CANCELED:
            self.results.job_finished(job_id)  # results: hooks
        if read.status == JobStatus.CANCELING and self.worker is not None:
            self.worker.cancel_local(job_id)
        return read

    async def delete(self, job_id: str) -> None:
        """Delete a finished job and its artifacts; `ConflictError` while it is not finished."""
        async with self.database.transaction() as session:
            repo = JobRepository(session)
            job = await repo.get(job_id)
            if job is None:
                raise NotFoundError(f"Job {job_id} does not exist.")
            if not JobStatus(job.status).is_terminal or not await repo.delete(job_id):
                raise ConflictError(
                    f"Job {job_id} is {job.status}; only finished jobs can be deleted."
                )

    async def wait(self, job_id: str, seconds: float) -> JobDetail:
        """The job once it is finished, or its state after `seconds`; woken by its events,
        not by polling."""
        latest: JobDetail | None = None

        async def finished() -> bool:
            nonlocal latest
            latest = await self.get_detail(job_id)
            return latest.status.is_terminal

        await wait_until(self.bus, job_id, seconds, finished)
        assert latest is not None  # noqa: S101 - wait_until checks at least once
        return latest

    def _notify_worker(self) -> None:
        if self.worker is not None:
            self.worker.notify()


async def _insert_jobs(session: AsyncSession, jobs: Sequence[Job]) -> list[None]:
    await JobRepository(session).add_many(jobs)
    await insert_events(
        session,
        [
            event_row(
                job.id,
                1,
                EventType.CREATED,
                {"status": JobStatus.PENDING.value, "run_at": isoformat(job.run_at)},
                job.created_at,
            )
            for job in jobs
        ],
    )
    await notify_new_jobs(session)
    return [None] * len(jobs)


def _request_hash(task_name: str, params: dict[str, Any]) -> str:
    canonical = json.dumps([task_name, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
