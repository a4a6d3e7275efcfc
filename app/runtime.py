"""The long-lived objects of a process: database, artifact manager, scheduler, worker."""

import logging
from dataclasses import dataclass

from app.artifacts.manager import ArtifactManager
from app.core.metrics import Metrics
from app.core.settings import Settings
from app.db.database import Database
from app.jobs.events import EventBus
from app.jobs.injectables import Injectables
from app.jobs.notify import PostgresListener
from app.jobs.scheduler import JobScheduler
from app.jobs.store import AfterCommit, JobStore
from app.jobs.worker import Worker, WorkerConfig
from app.tasks.registry import Registry, TaskRegistry

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    database: Database
    artifacts: ArtifactManager
    scheduler: JobScheduler
    worker: Worker | None
    listener: PostgresListener | None = None
    metrics: Metrics | None = None

    async def close(self) -> None:
        """Stop the worker (grace period, then hand back) and close the database."""
        if self.listener is not None:
            await self.listener.stop()
        if self.worker is not None:
            await self.worker.stop()
        await self.database.dispose()


async def start_runtime(
    settings: Settings,
    *,
    run_worker: bool,
    registry: Registry | None = None,
    metrics: Metrics | None = None,
) -> Runtime:
    """Create the runtime objects and, if asked, start a worker."""
    registry = registry if registry is not None else TaskRegistry.default()
    database = Database(settings.database_url)
    artifacts = ArtifactManager(database)
    bus = EventBus()
    metrics = metrics or Metrics()
    # One store per process: the scheduler and the worker share its after-commit effects.
    store = JobStore(database, AfterCommit(bus, metrics))
    scheduler = JobScheduler(
        database,
        max_concurrency=settings.max_concurrency,
        registry=registry,
        store=store,
        max_worker_losses=settings.max_worker_losses,
    )
    worker = None
    if run_worker:
        worker = Worker(
            database,
            WorkerConfig(
                concurrency=settings.max_concurrency,
                poll_interval=settings.poll_interval,
                lease_seconds=settings.lease_seconds,
                shutdown_grace=settings.shutdown_grace_seconds,
                tag_limits=settings.tag_limits,
                retention_seconds=settings.retention_seconds,
                retention_batch=settings.retention_batch,
                max_log_lines=settings.max_log_lines,
                max_children=settings.max_children,
                max_waiting_parents=settings.max_waiting_parents,
            ),
            injectables=Injectables(database, artifacts, scheduler),
            registry=registry,
            store=store,
        )
        await worker.start()
    listener = None
    if not database.is_sqlite:
        # Other processes' jobs and events reach this one through LISTEN/NOTIFY.
        def on_reconnect() -> None:
            bus.publish_all()
            if worker is not None:
                worker.notify()

        listener = PostgresListener(
            database.url,
            on_jobs=worker.notify if worker is not None else None,
            on_cancel=worker.cancel_local if worker is not None else None,
            on_events=bus.publish_payload,
            on_reconnect=on_reconnect,
        )
        await listener.start()
    logger.info(
        "runtime started",
        extra={"database": database.url.get_backend_name(), "worker": worker is not None},
    )
    return Runtime(database, artifacts, scheduler, worker, listener, metrics)
