"""`ScheduleManager`: create, read, change, delete and trigger schedules."""

import logging
from collections.abc import Callable, Sequence
from typing import Any

from app.core.clock import new_id, utcnow
from app.core.errors import ConflictError, NotFoundError, ValidationFailedError
from app.core.metrics import Metrics
from app.db.database import Database
from app.jobs.store import JobStore
from app.schedules.firing import FiringLoop, fire_of
from app.schedules.models import ScheduleRecord
from app.schedules.repository import ScheduleRepository
from app.schedules.schemas import ScheduleCreate, ScheduleRead, ScheduleUpdate, TriggerAccepted
from app.schedules.timing import Timing, TimingError
from app.tasks.registry import Registry, TaskDefinition, TaskRegistry

logger = logging.getLogger(__name__)

TIMING_FIELDS = ("cron", "timezone", "interval_seconds")


class ScheduleManager:
    """The schedules of the service, over REST. A change wakes the local firing loop."""

    def __init__(
        self,
        database: Database,
        *,
        registry: Registry | None = None,
        firing: FiringLoop | None = None,
        metrics: Metrics | None = None,
        on_queued: Callable[[Sequence[str]], None] | None = None,
        max_worker_losses: int = 3,
    ) -> None:
        self.database = database
        self.max_worker_losses = max_worker_losses
        self.registry = registry if registry is not None else TaskRegistry.default()
        self.firing = firing
        self.metrics = metrics
        self.on_queued = on_queued

    async def create(self, body: ScheduleCreate) -> ScheduleRead:
        """Validate and store a schedule: unknown task 404; bad cron, timezone or params 400."""
        definition = self._definition(body.task_name)
        timing = _timing(body.cron, body.timezone or "UTC", body.interval_seconds)
        definition.validate_params(body.params)
        now = utcnow()
        record = ScheduleRecord(
            id=new_id(),
            task_name=body.task_name,
            params=body.params,
            cron=body.cron,
            timezone=timing.timezone,
            interval_seconds=body.interval_seconds,
            enabled=body.enabled,
            catchup=body.catchup,
            overlap=body.overlap,
            next_fire_at=timing.after(now),
            last_fired_at=None,
            created_at=now,
            updated_at=now,
            code_key=None,
        )
        async with self.database.transaction() as session:
            await ScheduleRepository(session).add(record)
        self._wake()
        logger.info("schedule created", extra={"schedule_id": record.id})
        return ScheduleRead.from_record(record)

    async def get(self, schedule_id: str) -> ScheduleRead:
        async with self.database.read_session() as session:
            record = await ScheduleRepository(session).get(schedule_id)
        if record is None:
            raise NotFoundError(f"Schedule {schedule_id} does not exist.")
        return ScheduleRead.from_record(record)

    async def list_page(
        self, *, task_name: str | None, limit: int, offset: int
    ) -> tuple[list[ScheduleRead], int]:
        async with self.database.read_session() as session:
            records, total = await ScheduleRepository(session).list_page(
                task_name=task_name, limit=limit, offset=offset
            )
        return [ScheduleRead.from_record(record) for record in records], total

    async def update(self, schedule_id: str, body: ScheduleUpdate) -> ScheduleRead:
        """Change a schedule. A new timing, or resuming a paused schedule, starts from now
        (fire times that passed while it was paused are not caught up)."""
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        now = utcnow()
        async with self.database.transaction() as session:
            record = await ScheduleRepository(session).get(schedule_id, for_update=True)
            if record is None:
                raise NotFoundError(f"Schedule {schedule_id} does not exist.")
            if record.defined_in_code and set(changes) - {"enabled"}:
                raise ConflictError(
                    f"Schedule {schedule_id} is defined in code (task {record.task_name!r}); "
                    "only `enabled` can be changed here."
                )
            restart = _apply(record, changes, self._definition(record.task_name))
            if restart:
                record.next_fire_at = record.timing.after(now)
            record.updated_at = now
            await session.flush()
            read = ScheduleRead.from_record(record)
        self._wake()
        return read

    async def delete(self, schedule_id: str) -> None:
        """Delete a schedule; the jobs it made stay (with their `schedule_id`)."""
        async with self.database.transaction() as session:
            repo = ScheduleRepository(session)
            record = await repo.get(schedule_id, for_update=True)
            if record is None:
                raise NotFoundError(f"Schedule {schedule_id} does not exist.")
            if record.defined_in_code:
                raise ConflictError(
                    f"Schedule {schedule_id} is defined in code (task {record.task_name!r}); "
                    "remove it there, or pause it with enabled=false."
                )
            await repo.delete(record)

    async def trigger(self, schedule_id: str) -> TriggerAccepted:
        """Queue one fire now, whatever the timing, `enabled` and `overlap` say."""
        now = utcnow()
        async with self.database.transaction() as session:
            record = await ScheduleRepository(session).get(schedule_id)
            if record is None:
                raise NotFoundError(f"Schedule {schedule_id} does not exist.")
            definition = self._definition(record.task_name)
            definition.validate_params(record.params)
            fire = fire_of(
                definition, record, now, "trigger", max_worker_losses=self.max_worker_losses
            )
            job_id = await JobStore.queue_fire_in(session, fire, now=now)
        if job_id is None:
            raise ConflictError(f"Schedule {schedule_id} already fired at {now.isoformat()}.")
        if self.on_queued is not None:
            self.on_queued([job_id])
        if self.metrics is not None:
            self.metrics.schedule_fires.labels(record.id, record.task_name).inc()
            self.metrics.jobs_submitted.labels(record.task_name).inc()
        return TriggerAccepted(job_id=job_id, scheduled_for=now, message="Fire queued.")

    def _definition(self, task_name: str) -> TaskDefinition:
        definition = self.registry.find(task_name)
        if definition is None:
            raise NotFoundError(f"Task {task_name!r} is not registered.")
        return definition

    def _wake(self) -> None:
        if self.firing is not None:
            self.firing.wake()


def _timing(cron: str | None, timezone: str, interval_seconds: int | None) -> Timing:
    """The timing, or a 400 naming the field at fault."""
    try:
        return Timing(cron, timezone, interval_seconds)
    except TimingError as exc:
        raise _bad(exc.field, str(exc)) from None


def _apply(record: ScheduleRecord, changes: dict[str, Any], definition: TaskDefinition) -> bool:
    """Apply validated changes to `record`; whether its fire times start over from now."""
    restart = False
    if any(name in changes for name in TIMING_FIELDS):
        cron = changes.get("cron", None if "interval_seconds" in changes else record.cron)
        interval = changes.get("interval_seconds")
        if cron is None and interval is None:
            interval = record.interval_seconds
        if cron is not None:
            interval = None
        timezone = changes.get("timezone", record.timezone if cron is not None else "UTC")
        if interval is not None and "timezone" in changes:
            raise _bad("timezone", "timezone applies to cron schedules only")
        timing = _timing(cron, timezone, interval)
        record.cron, record.timezone = timing.cron, timing.timezone
        record.interval_seconds = timing.interval_seconds
        restart = True
    if "params" in changes:
        definition.validate_params(changes["params"])
        record.params = changes["params"]
    for name in ("catchup", "overlap"):
        if name in changes:
            setattr(record, name, changes[name])
    if "enabled" in changes:
        restart = restart or (changes["enabled"] and not record.enabled)
        record.enabled = changes["enabled"]
    return restart


def _bad(field: str, message: str) -> ValidationFailedError:
    return ValidationFailedError(
        message, errors=[{"loc": ["body", field], "msg": message, "type": "value_error"}]
    )
