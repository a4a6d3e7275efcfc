"""The long-lived objects of a process: database, artifact manager, scheduler, worker."""

import logging
from dataclasses import dataclass

from app.artifacts.manager import ArtifactManager
from app.core.settings import Settings
from app.db.database import Database
from app.jobs.notify import PostgresListener
from app.jobs.scheduler import JobScheduler
from app.jobs.worker import Worker, WorkerConfig
from app.tasks.registry import TaskRegistry

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    database: Database
    artifacts: ArtifactManager
    scheduler: JobScheduler
    worker: Worker | None
    listener: PostgresListener | None = None

    async def close(self) -> None:
        """Stop the worker (grace period, then hand back) and close the database."""
        if self.listener is not None:
            await self.listener.stop()
        if self.worker is not None:
            await self.worker.stop()
        await self.database.dispose()


async def start_runtime(
    settings: Settings, *, run_worker: bool, registry: type[TaskRegistry] = TaskRegistry
) -> Runtime:
    """Create the runtime objects and, if asked, start a worker."""
    database = Database(settings.database_url)
    artifacts = ArtifactManager(database)
    scheduler = JobScheduler(database, max_concurrency=settings.max_concurrency, registry=registry)
    worker = None
    listener = None
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
            ),
            shared={Database: database, ArtifactManager: artifacts, JobScheduler: scheduler},
            registry=registry,
        )
        scheduler.worker = worker
        await worker.start()
        if not database.is_sqlite:
            listener = PostgresListener(
                database.url, on_jobs=worker.notify, on_cancel=worker.cancel_local
            )
            await listener.start()
    logger.info(
        "runtime started",
        extra={"database": database.url.get_backend_name(), "worker": worker is not None},
    )
    return Runtime(database, artifacts, scheduler, worker, listener)
