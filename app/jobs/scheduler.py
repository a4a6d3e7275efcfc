"""`JobScheduler`: submit, inspect, cancel and delete jobs. The API and tasks both use it."""

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, Unpack

from sqlalchemy.exc import IntegrityError

from app.core.clock import new_id, utcnow
from app.core.errors import ConflictError, NotFoundError, ValidationFailedError
from app.core.logging import context_value
from app.core.metrics import Metrics
from app.db.database import Database
from app.jobs.cache import CacheMode, plan_cache
from app.jobs.events import EventBus
from app.jobs.live import wait_until
from app.jobs.models import Job, JobStatus
from app.jobs.repository import JobRepository
from app.jobs.results_feed import ResultsFeed
from app.jobs.schemas import AttemptRead, JobDetail, JobRead
from app.jobs.store import AfterCommit, JobStore, LocalWorker
from app.tasks.registry import Registry, TaskDefinition, TaskRegistry

logger = logging.getLogger(__name__)

DEFAULT_MAX_WORKER_LOSSES = 3


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


@dataclass(frozen=True)
class _Prepared:
    """A validated job, ready to queue (or an idempotent replay of an existing one)."""

    job: Job
    replay: JobRead | None = None


class JobScheduler:
    """Queues jobs in the job table (through the job store) and reads them back.

    Tasks can receive it by annotation to queue follow-up jobs:
    `async def fan_out(scheduler: JobScheduler) -> ...`.
    """

    def __init__(
        self,
        database: Database,
        *,
        max_concurrency: int,
        registry: Registry | None = None,
        bus: EventBus | None = None,
        metrics: Metrics | None = None,
        store: JobStore | None = None,
        max_worker_losses: int = DEFAULT_MAX_WORKER_LOSSES,
    ) -> None:
        self.database = database
        self.max_concurrency = max_concurrency
        self.registry = registry if registry is not None else TaskRegistry.default()
        self.store = store or JobStore(database, AfterCommit(bus or EventBus(), metrics))
        # Told after each commit: cache counters, hooks, the allowed callback hosts.
        self.results = ResultsFeed(self.store.after_commit.metrics)
        self.max_worker_losses = max_worker_losses

    @property
    def bus(self) -> EventBus:
        return self.store.bus

    @property
    def metrics(self) -> Metrics | None:
        return self.store.after_commit.metrics

    @property
    def worker(self) -> LocalWorker | None:
        """The worker of this process (if any), told about new jobs and cancellations."""
        return self.store.after_commit.worker

    @worker.setter
    def worker(self, worker: LocalWorker | None) -> None:
        self.store.after_commit.worker = worker

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
        definition = self.definition(task_name)
        prepared = await self.prepare(definition, params or {}, request_id=request_id, **options)
        if prepared.replay is not None:
            return prepared.replay, False
        job = prepared.job
        job.callback_url = self.results.accept_callback_url(options.get("callback_url"))
        plan = plan_cache(definition, params or {}, options.get("cache"))
        try:
            if plan is not None or job.callback_url is not None:
                admitted = await self.store.admit(job, plan)
                self.results.admitted(admitted)
                return JobRead.from_job(admitted.job), admitted.created
            await self.store.queue([job])
        except IntegrityError:
            # Another request with the same key won the race.
            replay = await self._replay_after_race(job)
            if replay is None:
                raise
            return replay, False
        return JobRead.from_job(job), True

    async def enqueue_many(
        self,
        task_name: str,
        items: Sequence[tuple[dict[str, Any], SubmitOptions]],
        *,
        request_id: str | None = None,
    ) -> list[JobRead]:
        """Queue one job per item (params, options) in one transaction, all or nothing.

        Every item is validated first: one bad item is a `ValidationFailedError` whose errors
        name it by index (`items.3.params.x`) and nothing is queued. An item whose idempotency
        key names an existing job (with the same request) returns that job; the same key on
        two items of the batch is one job.
        """
        definition = self.definition(task_name)
        for attempt in range(2):
            prepared = await self._prepare_many(definition, items, request_id)
            new = list({p.job.id: p.job for p in prepared if p.replay is None}.values())
            try:
                if new:
                    await self.store.queue(new)
            except IntegrityError:
                # A concurrent request took one of the keys: read the batch's keys again.
                if attempt == 1 or all(p.job.idempotency_key is None for p in prepared):
                    raise
                continue
            return [p.replay or JobRead.from_job(p.job) for p in prepared]
        raise AssertionError("unreachable")  # pragma: no cover

    async def _prepare_many(
        self,
        definition: TaskDefinition,
        items: Sequence[tuple[dict[str, Any], SubmitOptions]],
        request_id: str | None,
    ) -> list[_Prepared]:
        prepared: list[_Prepared] = []
        errors: list[dict[str, Any]] = []
        by_key: dict[str, _Prepared] = {}
        for index, (params, options) in enumerate(items):
            try:
                item = await self.prepare(definition, params, request_id=request_id, **options)
            except ValidationFailedError as exc:
                errors += [
                    {**error, "loc": ["items", str(index), *error["loc"]]}
                    for error in exc.errors or []
                ]
                continue
            key = item.job.idempotency_key
            earlier = by_key.get(key) if key is not None else None
            if earlier is not None:
                if earlier.job.request_hash != item.job.request_hash:
                    raise ConflictError(
                        f"Idempotency key {key!r} is used by two items of the batch with "
                        f"different params (item {index})."
                    )
                item = earlier
            elif key is not None:
                by_key[key] = item
            prepared.append(item)
        if errors:
            detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
            raise ValidationFailedError(f"Invalid batch items: {detail}", errors=errors)
        return prepared

    def definition(self, task_name: str) -> TaskDefinition:
        """The task's definition; `NotFoundError` for a task this registry lacks."""
        definition = self.registry.find(task_name)
        if definition is None:
            raise NotFoundError(f"Task {task_name!r} is not registered.")
        return definition

    async def prepare(
        self,
        definition: TaskDefinition,
        params: dict[str, Any],
        *,
        request_id: str | None = None,
        **options: Unpack[SubmitOptions],
    ) -> _Prepared:
        """Validate params and build the job row (nothing is written); an idempotency key
        already used with the same request is a replay of its job."""
        job = self.build_job(definition, params, request_id=request_id, **options)
        if job.idempotency_key is not None and job.request_hash is not None:
            existing = await self._replay(job.idempotency_key, job.request_hash)
            if existing is not None:
                return _Prepared(job, existing)
        return _Prepared(job)

    def build_job(
        self,
        definition: TaskDefinition,
        params: dict[str, Any],
        *,
        request_id: str | None = None,
        **options: Unpack[SubmitOptions],
    ) -> Job:
        """Validate params and build the pending job row, options filled from the task's."""
        definition.validate_params(params)
        task_name = definition.name
        request_hash = _request_hash(task_name, params)
        priority, retries = options.get("priority"), options.get("retries")
        delay, run_at = options.get("delay"), options.get("run_at")
        timeout, idempotency_key = options.get("timeout"), options.get("idempotency_key")
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
            worker_losses=0,
            max_worker_losses=(
                self.max_worker_losses
                if defaults.max_worker_losses is None
                else defaults.max_worker_losses
            ),
            # A job queued by a running task inherits the request id of that task's job.
            request_id=request_id or context_value("request_id"),
        )
        return job

    async def _replay_after_race(self, job: Job) -> JobRead | None:
        if job.idempotency_key is None or job.request_hash is None:
            return None
        return await self._replay(job.idempotency_key, job.request_hash)

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
        job = JobRead.from_job(await self.store.cancel(job_id))
        if job.status is JobStatus.CANCELED:
            self.results.job_finished(job_id)  # hooks: a pending job ended
        return job

    async def delete(self, job_id: str) -> None:
        """Delete a finished job and its artifacts; `ConflictError` while it is not finished."""
        await self.store.delete(job_id)

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


def _request_hash(task_name: str, params: dict[str, Any]) -> str:
    canonical = json.dumps([task_name, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
