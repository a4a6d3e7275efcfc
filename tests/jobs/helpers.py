"""Helpers for the job and database tests: rows, bounded waits, workers, scratch databases."""

import subprocess
import sys
import uuid
import weakref
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.artifacts.manager import ArtifactManager
from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs import live
from app.jobs.bounds import Bounds
from app.jobs.context import JobContext
from app.jobs.events import EventBus
from app.jobs.injectables import Injectables, SessionFactory
from app.jobs.models import TERMINAL_STATUSES, Job, JobStatus
from app.jobs.runner import DEFAULT_BOUNDS, Outcome, run_task
from app.jobs.scheduler import JobScheduler
from app.jobs.worker import Worker, WorkerConfig
from app.tasks.registry import Registry, TaskDefinition, TaskRegistry
from tests.helpers import WAIT_SECONDS, apoll_until


def make_job(**values: Any) -> Job:
    """A job row with sensible defaults: pending, runnable now, one attempt allowed."""
    now = utcnow()
    fields: dict[str, Any] = {
        "id": new_id(),
        "task_name": "noop",
        "status": JobStatus.PENDING,
        "params": {},
        "priority": 0,
        "run_at": now,
        "created_at": now,
        "attempts": 0,
        "max_attempts": 1,
    }
    fields.update(values)
    return Job(**fields)


async def insert_job(database: Database, **values: Any) -> Job:
    job = make_job(**values)
    async with database.transaction() as session:
        session.add(job)
    return job


async def fetch_job(database: Database, job_id: str) -> Job:
    async with database.session() as session:
        job = await session.get(Job, job_id)
    assert job is not None, f"job {job_id} is gone"
    return job


async def job_status(database: Database, job_id: str) -> JobStatus:
    return JobStatus((await fetch_job(database, job_id)).status)


async def count_jobs(database: Database, *conditions: Any) -> int:
    async with database.session() as session:
        count = await session.scalar(select(func.count()).select_from(Job).where(*conditions))
    return int(count or 0)


async def artifacts_of(database: Database, job_id: str) -> list[Artifact]:
    async with database.session() as session:
        rows = await session.scalars(
            select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.id)
        )
        return list(rows)


# The bus of each database's in-process worker (`worker_for`): waits wake on the job's events.
_BUSES: "weakref.WeakKeyDictionary[Database, EventBus]" = weakref.WeakKeyDictionary()


async def wait_for_status(
    database: Database, job_id: str, *statuses: JobStatus, within: float = WAIT_SECONDS
) -> Job:
    """The job row once its status is one of `statuses`: re-read on each event of the job on
    the bus of the worker `worker_for` made for `database` (re-polled only without one)."""

    async def reached() -> bool:
        return await job_status(database, job_id) in statuses

    what = f"job {job_id} to be one of {[s.value for s in statuses]}"
    bus = _BUSES.get(database)
    if bus is None:
        await apoll_until(reached, within=within, what=what)
    else:
        assert await live.wait_until(bus, job_id, within, reached), f"timed out waiting for {what}"
    return await fetch_job(database, job_id)


async def wait_for_terminal(
    database: Database, job_id: str, *, within: float = WAIT_SECONDS
) -> Job:
    return await wait_for_status(database, job_id, *TERMINAL_STATUSES, within=within)


def worker_for(
    database: Database,
    *,
    concurrency: int = 4,
    poll_interval: float = 0.05,
    lease_seconds: float = 30.0,
    shutdown_grace: float = 5.0,
    worker_id: str | None = None,
    registry: Registry | None = None,
    worker_timeout: float | None = None,
) -> tuple[Worker, JobScheduler]:
    """A worker wired like the service wires it, and a scheduler that notifies it."""
    bus = EventBus()
    registry = registry if registry is not None else TaskRegistry.default()
    scheduler = JobScheduler(database, max_concurrency=concurrency, registry=registry, bus=bus)
    worker = Worker(
        database,
        WorkerConfig(
            concurrency=concurrency,
            poll_interval=poll_interval,
            lease_seconds=lease_seconds,
            shutdown_grace=shutdown_grace,
            worker_timeout=worker_timeout,
        ),
        injectables=Injectables(database, ArtifactManager(database), scheduler),
        registry=registry,
        worker_id=worker_id,
        bus=bus,
    )
    scheduler.worker = worker
    _BUSES[database] = bus
    return worker, scheduler


@asynccontextmanager
async def running_worker(
    database: Database, **config: Any
) -> AsyncIterator[tuple[Worker, JobScheduler]]:
    """Start a worker (see `worker_for`) and stop it afterwards."""
    worker, scheduler = worker_for(database, **config)
    await worker.start()
    try:
        yield worker, scheduler
    finally:
        await worker.stop()
        await apoll_until(lambda: worker.running_count == 0, what="the worker to drop its jobs")


def exited_pid() -> int:
    """The pid of a process that has already exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=WAIT_SECONDS)
    return process.pid


def ago(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


def later(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


async def _admin(postgres_url: str, statement: str) -> None:
    url = make_url(postgres_url).set(database="postgres")
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@asynccontextmanager
async def scratch_postgres(postgres_url: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on the server of `postgres_url`; dropped afterwards."""
    name = f"taskexec_test_{uuid.uuid4().hex[:12]}"
    await _admin(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def no_session() -> AsyncSession:
    raise AssertionError("a session was opened for a task that did not ask for one")


async def run(
    definition: TaskDefinition,
    params: dict[str, Any],
    context: JobContext,
    executor: ThreadPoolExecutor,
    *,
    shared: Injectables | None = None,
    session_factory: SessionFactory = no_session,
    bounds: Bounds = DEFAULT_BOUNDS,
) -> Outcome:
    """One attempt of `definition` through `run_task`, without a database unless given one."""
    return await run_task(
        definition,
        params,
        context,
        shared or unused_injectables(),
        session_factory,
        executor,
        bounds=bounds,
    )


def unused_injectables() -> Injectables:
    """Injectables for tasks that ask for none (its database is never connected to)."""
    database = Database("sqlite+aiosqlite://")
    return Injectables(
        database, ArtifactManager(database), JobScheduler(database, max_concurrency=1)
    )
