"""The long-lived objects of a process: database, artifact manager, scheduler, worker."""

import logging
from dataclasses import dataclass

from app.artifacts.hierarchy import DEFAULT_HIERARCHY, ArtifactHierarchy
from app.artifacts.manager import ArtifactManager
from app.core.metrics import Metrics
from app.core.settings import Settings
from app.db.database import Database
from app.jobs.bounds import Bounds
from app.jobs.callbacks import CallbackConfig, CallbackDispatcher
from app.jobs.events import EventBus
from app.jobs.hooks import HookDispatcher
from app.jobs.injectables import Injectables
from app.jobs.notify import PostgresListener
from app.jobs.scheduler import JobScheduler
from app.jobs.store import AfterCommit, JobStore
from app.jobs.worker import Worker, WorkerConfig
from app.jobs.worker_ids import make_worker_id
from app.schedules.runtime import Schedules, start_schedules
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
    schedules: Schedules | None = None
    callbacks: CallbackDispatcher | None = None
    hooks: HookDispatcher | None = None

    async def close(self) -> None:
        """Stop the worker (grace period, then hand back) and close the database."""
        if self.schedules is not None:
            await self.schedules.stop()
        if self.listener is not None:
            await self.listener.stop()
        if self.worker is not None:
            await self.worker.stop()
        if self.callbacks is not None:
            await self.callbacks.stop()
        if self.hooks is not None:
            await self.hooks.stop()
        await self.database.dispose()


async def start_runtime(
    settings: Settings,
    *,
    run_worker: bool,
    registry: Registry | None = None,
    metrics: Metrics | None = None,
    hierarchy: ArtifactHierarchy = DEFAULT_HIERARCHY,
    hooks: object | None = None,
) -> Runtime:
    """Create the runtime objects and, if asked, start a worker; the callback dispatcher
    runs when `TASKEXEC_CALLBACK_ALLOWED_HOSTS` allows callbacks; `hooks` are called after
    job changes this process makes."""
    registry = registry if registry is not None else TaskRegistry.default()
    database = Database(settings.database_url)
    bus = EventBus()
    artifacts = ArtifactManager(
        database, bus=bus, max_bytes=settings.max_artifact_bytes, hierarchy=hierarchy
    )
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
                bounds=Bounds.from_settings(settings),
                sync_executor=settings.sync_executor,
                max_children=settings.max_children,
                max_waiting_parents=settings.max_waiting_parents,
                worker_timeout=settings.worker_timeout,
            ),
            injectables=Injectables(database, artifacts, scheduler),
            registry=registry,
            store=store,
        )
        worker.results = scheduler.results
        await worker.start()
    scheduler.results.callback_hosts = settings.callback_allowed_hosts
    hook_dispatcher = None
    if hooks is not None:
        hook_dispatcher = HookDispatcher(hooks, database, timeout=settings.hook_timeout_seconds)
        hook_dispatcher.start()
        scheduler.results.hooks = hook_dispatcher
    callbacks = None
    if settings.callback_allowed_hosts:
        callbacks = CallbackDispatcher(
            database, CallbackConfig.from_settings(settings), owner=make_worker_id(), bus=bus
        )
        await callbacks.start()
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
    # Schedules: every process fires them (the jobs table's unique fire identity, not a leader).
    schedules = await start_schedules(
        settings, database, registry=registry, bus=bus, worker=worker, metrics=metrics
    )
    logger.info(
        "runtime started",
        extra={"database": database.url.get_backend_name(), "worker": worker is not None},
    )
    return Runtime(
        database,
        artifacts,
        scheduler,
        worker,
        listener,
        metrics,
        schedules,
        callbacks,
        hook_dispatcher,
    )
