"""Start and stop the schedules of a process: code-defined ones upserted, the firing loop."""

from collections.abc import Sequence
from dataclasses import dataclass

from app.core.metrics import Metrics
from app.core.settings import Settings
from app.db.database import Database
from app.jobs.events import EventBus
from app.jobs.worker import Worker
from app.schedules.code import sync_code_schedules
from app.schedules.firing import FiringConfig, FiringLoop
from app.schedules.manager import ScheduleManager
from app.tasks.registry import TaskRegistry


@dataclass
class Schedules:
    manager: ScheduleManager
    firing: FiringLoop | None

    async def stop(self) -> None:
        if self.firing is not None:
            await self.firing.stop()


async def start_schedules(
    settings: Settings,
    database: Database,
    *,
    registry: type[TaskRegistry],
    bus: EventBus,
    worker: Worker | None,
    metrics: Metrics | None,
) -> Schedules:
    """Upsert the schedules defined in code and, unless `run_schedules` is off, start the
    firing loop. Fires wake the local worker and whoever follows the new jobs."""

    def on_queued(job_ids: Sequence[str]) -> None:
        bus.publish(job_ids)
        if worker is not None:
            worker.notify()

    await sync_code_schedules(database, registry)
    firing = None
    if settings.run_schedules:
        config = FiringConfig(
            poll_interval=settings.schedule_poll_interval,
            max_catchup=settings.schedule_max_catchup,
            grace_seconds=settings.schedule_grace_seconds,
        )
        firing = FiringLoop(
            database, config, registry=registry, metrics=metrics, on_queued=on_queued
        )
        firing.start()
    manager = ScheduleManager(
        database, registry=registry, firing=firing, metrics=metrics, on_queued=on_queued
    )
    return Schedules(manager, firing)
