"""Start and stop the schedules of a process: code-defined ones upserted, the firing loop."""

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from app.core.metrics import Metrics
from app.core.settings import Settings
from app.db.database import Database
from app.jobs.events import EventBus
from app.jobs.worker import Worker
from app.schedules.code import sync_code_schedules
from app.schedules.firing import FiringConfig, FiringLoop
from app.schedules.manager import ScheduleManager
from app.tasks.registry import Registry

logger = logging.getLogger(__name__)


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
    registry: Registry,
    bus: EventBus,
    worker: Worker | None,
    metrics: Metrics | None,
) -> Schedules:
    """Upsert the schedules defined in code and, unless `run_schedules` is off, start the
    firing loop. Fires wake the local worker and whoever follows the new jobs.

    A database that cannot be reached does not stop the process from starting: the firing
    loop retries the upsert before each round until it succeeds."""

    def on_queued(job_ids: Sequence[str]) -> None:
        bus.publish(job_ids)
        if worker is not None:
            worker.notify()

    async def sync() -> None:
        await sync_code_schedules(database, registry)

    pending: Callable[[], Awaitable[None]] | None = None
    try:
        await sync()
    except Exception:
        logger.warning("could not upsert the schedules defined in code; retrying", exc_info=True)
        pending = sync
    firing = None
    if settings.run_schedules:
        config = FiringConfig(
            poll_interval=settings.schedule_poll_interval,
            max_catchup=settings.schedule_max_catchup,
            grace_seconds=settings.schedule_grace_seconds,
            max_worker_losses=settings.max_worker_losses,
        )
        firing = FiringLoop(
            database,
            config,
            registry=registry,
            metrics=metrics,
            on_queued=on_queued,
            prepare=pending,
        )
        firing.start()
    manager = ScheduleManager(
        database,
        registry=registry,
        firing=firing,
        metrics=metrics,
        on_queued=on_queued,
        max_worker_losses=settings.max_worker_losses,
    )
    return Schedules(manager, firing)
