"""`JobScheduler`: submit, inspect, cancel and delete jobs. The API and tasks both use it."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Unpack

from sqlalchemy.exc import IntegrityError

from app.core.clock import utcnow
from app.core.errors import ConflictError, NotFoundError, ValidationFailedError
from app.core.metrics import Metrics
from app.db.database import Database
from app.jobs.cache import plan_cache
from app.jobs.events import EventBus
from app.jobs.live import wait_until
from app.jobs.models import Job, JobStatus
from app.jobs.repository import JobRepository
from app.jobs.results_feed import ResultsFeed
from app.jobs.schemas import AttemptRead, JobDetail, JobRead
from app.jobs.store import AfterCommit, JobStore, LocalWorker
from app.jobs.store.queueing import JobRow
from app.jobs.submissions import SubmitOptions, pending_row, uses_cache_or_callback
from app.tasks.registry import Registry, TaskDefinition, TaskRegistry

__all__ = ["DEFAULT_MAX_WORKER_LOSSES", "JobScheduler", "Receipt", "SubmitOptions"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_WORKER_LOSSES = 3


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a submission did: the job that answers it, and whether it was created now."""

    job_id: str
    created: bool
    idempotency_key: str | None = None  # of the job that answers
    cached_from: str | None = None


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
        """`submit`, also telling whether a job was created (False: an idempotent replay or
        a join of an identical cached job in flight)."""
        definition = self.definition(task_name)
        if uses_cache_or_callback(definition, options):
            return await self._admit(definition, params or {}, request_id, options)
        row, found = await self._queue_one(definition, params or {}, request_id, options)
        if found is None:
            return JobRead.from_job(Job(**row)), True
        replay = await self._replay(row["idempotency_key"], row["request_hash"])
        if replay is None:  # the keyed job was deleted meanwhile: the key is free again
            return await self.enqueue(task_name, params, request_id=request_id, **options)
        return replay, False

    async def accept(
        self,
        task_name: str,
        params: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        **options: Unpack[SubmitOptions],
    ) -> Receipt:
        """`enqueue` for the `$execute` route: the same checks and writes, answered with a
        `Receipt` instead of the whole job."""
        definition = self.definition(task_name)
        if uses_cache_or_callback(definition, options):
            job, created = await self._admit(definition, params or {}, request_id, options)
            return Receipt(job.id, created, job.idempotency_key, job.cached_from)
        row, found = await self._queue_one(definition, params or {}, request_id, options)
        key = row["idempotency_key"]
        if found is not None:
            return Receipt(found, False, key)
        return Receipt(row["id"], True, key)

    async def enqueue_many(
        self,
        task_name: str,
        items: Sequence[tuple[dict[str, Any], SubmitOptions]],
        *,
        request_id: str | None = None,
    ) -> list[str]:
        """Queue one job per item (params, options) in one transaction, all or nothing; the
        job ids in item order.

        Every item is validated first: one bad item is a `ValidationFailedError` whose errors
        name it by index (`items.3.params.x`) and nothing is queued. An item whose idempotency
        key names an existing job (with the same request) returns that job; the same key on
        two items of the batch is one job.
        """
        definition = self.definition(task_name)
        rows = self._rows(definition, items, request_id)
        unique = list({row["id"]: row for row in rows}.values())
        found = await self._queue_new(unique)
        return [str(found.get(row["idempotency_key"], row["id"])) for row in rows]

    def definition(self, task_name: str) -> TaskDefinition:
        """The task's definition; `NotFoundError` for a task this registry lacks."""
        definition = self.registry.find(task_name)
        if definition is None:
            raise NotFoundError(f"Task {task_name!r} is not registered.")
        return definition

    def build_job(
        self,
        definition: TaskDefinition,
        params: dict[str, Any],
        *,
        request_id: str | None = None,
        **options: Unpack[SubmitOptions],
    ) -> Job:
        """Validate params and build the pending job row, options filled from the task's."""
        # Flows tell a re-attached child by its fingerprint: a job object always has one.
        return Job(**self._row(definition, params, request_id, options, fingerprint=True))

    def _row(
        self,
        definition: TaskDefinition,
        params: dict[str, Any],
        request_id: str | None,
        options: SubmitOptions,
        now: datetime | None = None,
        *,
        fingerprint: bool = False,
    ) -> JobRow:
        return pending_row(
            definition,
            params,
            options,
            now=now or utcnow(),
            request_id=request_id,
            max_worker_losses=self.max_worker_losses,
            fingerprint=fingerprint,
        )

    def _rows(
        self,
        definition: TaskDefinition,
        items: Sequence[tuple[dict[str, Any], SubmitOptions]],
        request_id: str | None,
    ) -> list[JobRow]:
        """Every item's row (two items with one key share the first's row); every invalid
        item's problems, by index, in one `ValidationFailedError`."""
        now = utcnow()
        rows: list[JobRow] = []
        errors: list[dict[str, Any]] = []
        by_key: dict[str, JobRow] = {}
        for index, (params, options) in enumerate(items):
            try:
                row = self._row(definition, params, request_id, options, now)
            except ValidationFailedError as exc:
                errors += [
                    {**error, "loc": ["items", str(index), *error["loc"]]}
                    for error in exc.errors or []
                ]
                continue
            key = row["idempotency_key"]
            earlier = by_key.get(key) if key is not None else None
            if earlier is not None:
                if earlier["request_hash"] != row["request_hash"]:
                    raise ConflictError(
                        f"Idempotency key {key!r} is used by two items of the batch with "
                        f"different params (item {index})."
                    )
                row = earlier
            elif key is not None:
                by_key[key] = row
            rows.append(row)
        if errors:
            detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
            raise ValidationFailedError(f"Invalid batch items: {detail}", errors=errors)
        return rows

    async def _queue_one(
        self,
        definition: TaskDefinition,
        params: dict[str, Any],
        request_id: str | None,
        options: SubmitOptions,
    ) -> tuple[JobRow, str | None]:
        """Queue one new job; (its row, the id of the job its idempotency key names)."""
        row = self._row(definition, params, request_id, options)
        found = await self._queue_new([row])
        key = row["idempotency_key"]
        return row, found.get(key) if key is not None else None

    async def _queue_new(self, rows: Sequence[JobRow]) -> dict[str, str]:
        """Queue `rows` (one key per row at most), except those whose idempotency key names an
        existing job of the same request: {key: that job's id}. `ConflictError` for a key
        used with another request."""
        keyed = {row["idempotency_key"]: row for row in rows if row["idempotency_key"]}
        for attempt in range(2):
            found = await self._find_keys(keyed) if keyed else {}
            new = [row for row in rows if row["idempotency_key"] not in found]
            try:
                if new:
                    await self.store.queue_rows(new)
            except IntegrityError:
                # A concurrent request took one of the keys: read the keys again.
                if attempt == 1 or not keyed:
                    raise
                continue
            return found
        raise AssertionError("unreachable")  # pragma: no cover

    async def _find_keys(self, keyed: dict[str, JobRow]) -> dict[str, str]:
        async with self.database.read_session() as session:
            existing = await JobRepository(session).ids_by_idempotency_keys(list(keyed))
        for key, (job_id, stored_hash) in existing.items():
            if stored_hash != keyed[key]["request_hash"]:
                raise _key_conflict(key, job_id)
        return {key: job_id for key, (job_id, _) in existing.items()}

    async def _admit(
        self,
        definition: TaskDefinition,
        params: dict[str, Any],
        request_id: str | None,
        options: SubmitOptions,
    ) -> tuple[JobRead, bool]:
        """A request through the result cache or with a callback: `JobStore.admit`."""
        job = self.build_job(definition, params, request_id=request_id, **options)
        key, request_hash = job.idempotency_key, job.request_hash
        if key is not None and request_hash is not None:
            replay = await self._replay(key, request_hash)
            if replay is not None:
                return replay, False
        job.callback_url = self.results.accept_callback_url(options.get("callback_url"))
        plan = plan_cache(definition, params, options.get("cache"))
        try:
            admitted = await self.store.admit(job, plan)
        except IntegrityError:
            # Another request with the same key won the race.
            if key is None or request_hash is None:
                raise
            replay = await self._replay(key, request_hash)
            if replay is None:
                raise
            return replay, False
        self.results.admitted(admitted)
        return JobRead.from_job(admitted.job), admitted.created

    async def _replay(self, idempotency_key: str, request_hash: str) -> JobRead | None:
        async with self.database.read_session() as session:
            job = await JobRepository(session).get_by_idempotency_key(idempotency_key)
        if job is None:
            return None
        if job.request_hash != request_hash:
            raise _key_conflict(idempotency_key, job.id)
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


def _key_conflict(idempotency_key: str, job_id: str) -> ConflictError:
    return ConflictError(
        f"Idempotency key {idempotency_key!r} was used for job {job_id} with a "
        "different task or params."
    )
