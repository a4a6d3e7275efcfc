"""The firing loop: queues the fires of due schedules. Every process runs one.

No process is elected to fire: each loop queues the fires it finds due, and the unique
(schedule_id, scheduled_for) pair on the jobs table turns every second attempt at the same
fire into a no-op (see `app.jobs.store.fires`). A schedule's `next_fire_at` is moved on with a
compare-and-set, so a slower process never moves it back.
"""

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.clock import utcnow
from app.core.errors import AppError
from app.core.metrics import Metrics
from app.db.database import Database
from app.jobs.store import Fire, JobStore
from app.schedules.models import ScheduleRecord
from app.schedules.repository import ScheduleRepository
from app.schedules.timing import plan_fires
from app.tasks.registry import Registry, TaskDefinition, TaskRegistry

logger = logging.getLogger(__name__)

DUE_BATCH = 100  # schedules handled per round; a full batch starts the next round at once
EARLY_WAKE_MARGIN = 0.001  # seconds past a fire time before the loop looks (clocks differ)


@dataclass(frozen=True)
class FiringConfig:
    poll_interval: float = 1.0
    max_catchup: int = 100
    grace_seconds: float = 60.0
    # For tasks that do not set their own (`TASKEXEC_MAX_WORKER_LOSSES`).
    max_worker_losses: int = 3


def fire_of(
    definition: TaskDefinition,
    record: ScheduleRecord,
    at: datetime,
    source: str,
    *,
    max_worker_losses: int,
) -> Fire:
    """The job a fire of `record` at `at` becomes, with the task's registered options;
    `max_worker_losses` applies when the task sets none."""
    options = definition.options
    return Fire(
        schedule_id=record.id,
        scheduled_for=at,
        task_name=record.task_name,
        params=record.params,
        priority=options.priority,
        max_attempts=options.retries + 1,
        timeout_seconds=options.timeout,
        max_worker_losses=(
            max_worker_losses if options.max_worker_losses is None else options.max_worker_losses
        ),
        source=source,
    )


class FiringLoop:
    """Wakes at the next fire time (or every `poll_interval`, or when `wake()` is called) and
    queues the fires of every due schedule whose task this process knows."""

    def __init__(
        self,
        database: Database,
        config: FiringConfig,
        *,
        registry: Registry | None = None,
        metrics: Metrics | None = None,
        on_queued: Callable[[Sequence[str]], None] | None = None,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.database = database
        # Runs before the first round, and again each round until it succeeds (the database
        # may not be reachable when the process starts).
        self._prepare = prepare
        self.config = config
        self.registry = registry if registry is not None else TaskRegistry.default()
        self.metrics = metrics
        self.on_queued = on_queued
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._more = False  # the last round left due schedules for the next one

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="schedule firing loop")

    def wake(self) -> None:
        """Look again now (a schedule was created or changed)."""
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            delay = self.config.poll_interval
            started = utcnow()
            try:
                if self._prepare is not None:
                    await self._prepare()
                    self._prepare = None
                earliest = await self.tick(started)
            except Exception:
                logger.exception("schedule firing round failed")
            else:
                if self._more:
                    delay = 0.0
                elif earliest is not None and earliest > started:
                    until = (earliest - utcnow()).total_seconds() + EARLY_WAKE_MARGIN
                    delay = max(0.0, min(delay, until))
                # Otherwise a schedule is still due after its round (its fire failed and was
                # logged): look again after the poll interval, not at once.
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def tick(self, now: datetime) -> datetime | None:
        """Queue the fires due at `now`; the earliest next fire time of the schedules this
        process can fire afterwards (None if there are none)."""
        names = self.registry.list_all()
        async with self.database.read_session() as session:
            due = await ScheduleRepository(session).due(now=now, task_names=names, limit=DUE_BATCH)
        for record in due:
            try:
                await self.fire_due(record, now)
            except Exception:
                logger.exception(
                    "could not fire schedule",
                    extra={"schedule_id": record.id, "task_name": record.task_name},
                )
        self._more = len(due) == DUE_BATCH
        async with self.database.read_session() as session:
            return await ScheduleRepository(session).earliest_next_fire(names)

    async def fire_due(self, record: ScheduleRecord, now: datetime) -> list[str]:
        """Queue what `record`'s catch-up and overlap rules allow; the ids of the jobs this
        call created (another process may have created some of the same fires first)."""
        definition = self.registry.find(record.task_name)
        if definition is None:
            return []
        plan = plan_fires(
            record.timing,
            record.next_fire_at,
            now,
            catchup=record.catchup,
            max_catchup=self.config.max_catchup,
            grace=timedelta(seconds=self.config.grace_seconds),
        )
        missed: Counter[str] = Counter({"catchup": plan.missed})
        times = plan.fire
        if record.overlap == "skip" and len(times) > 1:
            missed["overlap"] += len(times) - 1
            times = times[-1:]
        try:
            definition.validate_params(record.params)
        except AppError as exc:
            # The task changed since the schedule was made; nothing invalid becomes a job.
            logger.warning(
                "schedule params no longer valid; fire skipped",
                extra={"schedule_id": record.id, "task_name": record.task_name, "error": str(exc)},
            )
            missed["invalid_params"] += len(times)
            times = []
        queued: list[str] = []
        async with self.database.transaction() as session:
            repo = ScheduleRepository(session)
            if times and record.overlap == "skip" and await repo.has_unfinished_fire(record.id):
                missed["overlap"] += len(times)
                times = []
            for at in times:
                job_id = await JobStore.queue_fire_in(
                    session,
                    fire_of(
                        definition,
                        record,
                        at,
                        "schedule",
                        max_worker_losses=self.config.max_worker_losses,
                    ),
                )
                if job_id is not None:
                    queued.append(job_id)
            values: dict[str, object] = {"next_fire_at": plan.next_fire_at}
            if times:
                values["last_fired_at"] = times[-1]
            advanced = await repo.advance(record.id, expected=record.next_fire_at, values=values)
        self._after_commit(record, queued, missed if advanced else Counter())
        return queued

    def _after_commit(
        self, record: ScheduleRecord, queued: list[str], missed: Counter[str]
    ) -> None:
        if queued and self.on_queued is not None:
            self.on_queued(queued)
        for job_id in queued:
            logger.info(
                "schedule fired",
                extra={"schedule_id": record.id, "task_name": record.task_name, "job_id": job_id},
            )
        if self.metrics is None:
            return
        if queued:
            self.metrics.schedule_fires.labels(record.id, record.task_name).inc(len(queued))
            self.metrics.jobs_submitted.labels(record.task_name).inc(len(queued))
        for reason, count in missed.items():
            if count:
                self.metrics.schedule_missed_fires.labels(record.id, record.task_name, reason).inc(
                    count
                )
