"""Retention: the worker deletes old finished jobs (artifacts and attempts too) in batches."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

import pydantic
import pytest
from sqlalchemy import event, select

from app.artifacts.manager import ArtifactManager
from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow
from app.core.settings import Settings
from app.db.database import Database
from app.jobs.injectables import Injectables
from app.jobs.models import Job, JobAttempt, JobStatus
from app.jobs.scheduler import JobScheduler
from app.jobs.worker import Worker, WorkerConfig
from app.runtime import start_runtime
from app.tasks.registry import TaskRegistry
from tests.conftest import make_settings
from tests.helpers import apoll_until

WAIT = 10.0
RETENTION = 60.0
OLD = timedelta(hours=1)
FAR_FUTURE = timedelta(days=1)


async def _add_job(
    database: Database,
    status: JobStatus,
    *,
    finished_ago: timedelta | None = None,
    task_name: str = "gone",
    **values: Any,
) -> str:
    """A job row; a finished one gets the artifact and attempt a real run leaves."""
    now = utcnow()
    job_id = new_id()
    fields: dict[str, Any] = {
        "id": job_id,
        "task_name": task_name,
        "status": status,
        "params": {},
        "priority": 0,
        "run_at": now - OLD,
        "created_at": now - OLD,
        "attempts": 0,
        "max_attempts": 1,
    }
    rows: list[Any] = []
    if finished_ago is not None:
        finished_at = now - finished_ago
        artifact_id = new_id()
        fields.update(
            attempts=1,
            started_at=finished_at - timedelta(seconds=1),
            finished_at=finished_at,
            result_artifact_id=artifact_id,
        )
        rows.append(Artifact(id=artifact_id, job_id=job_id, data={}, created_at=finished_at))
        rows.append(
            JobAttempt(
                job_id=job_id,
                attempt=1,
                status=status.value,
                worker_id="w",
                started_at=finished_at - timedelta(seconds=1),
                finished_at=finished_at,
            )
        )
    fields.update(values)
    async with database.transaction() as session:
        session.add(Job(**fields))
        await session.flush()
        session.add_all(rows)
    return job_id


async def _ids(database: Database, column: Any) -> set[str]:
    async with database.session() as session:
        return set(await session.scalars(select(column)))


async def _job_ids(database: Database) -> set[str]:
    return await _ids(database, Job.id)


@asynccontextmanager
async def _running_worker(database: Database, config: WorkerConfig) -> AsyncIterator[Worker]:
    scheduler = JobScheduler(database, max_concurrency=1)
    injectables = Injectables(database, ArtifactManager(database), scheduler)
    worker = Worker(database, config, injectables=injectables)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


@contextmanager
def _job_deletes(database: Database) -> Iterator[list[int]]:
    """Rows removed by each DELETE on the jobs table while the block runs."""
    counts: list[int] = []

    def after_execute(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM JOBS"):
            counts.append(cursor.rowcount)

    engine = database.engine.sync_engine
    event.listen(engine, "after_cursor_execute", after_execute)
    try:
        yield counts
    finally:
        event.remove(engine, "after_cursor_execute", after_execute)


def _config(**values: Any) -> WorkerConfig:
    defaults: dict[str, Any] = {"concurrency": 1, "poll_interval": 0.05}
    defaults.update(values)
    return WorkerConfig(**defaults)


async def test_old_finished_jobs_are_deleted_in_batches(database: Database) -> None:
    old = [
        await _add_job(database, status, finished_ago=OLD + timedelta(minutes=i))
        for i, status in enumerate(
            [
                JobStatus.COMPLETED,
                JobStatus.FAILED,
                JobStatus.CANCELED,
                JobStatus.COMPLETED,
                JobStatus.COMPLETED,
            ]
        )
    ]
    recent = await _add_job(database, JobStatus.COMPLETED, finished_ago=timedelta(seconds=5))
    # Created long ago but not finished: never deleted, however old.
    pending = await _add_job(database, JobStatus.PENDING, run_at=utcnow() + FAR_FUTURE)
    running = await _add_job(
        database,
        JobStatus.RUNNING,
        attempts=1,
        started_at=utcnow() - OLD,
        worker_id="otherhost:1:abcdef",
        lease_expires_at=utcnow() + FAR_FUTURE,
    )
    assert len(await _ids(database, Artifact.id)) == 6
    keep = {recent, pending, running}

    config = _config(retention_seconds=RETENTION, retention_interval=0.1, retention_batch=2)
    with _job_deletes(database) as deletes:
        async with _running_worker(database, config):

            async def cleaned() -> bool:
                return await _job_ids(database) == keep

            await apoll_until(cleaned, within=WAIT, what="the old jobs to be deleted")

    assert not set(old) & await _job_ids(database)
    # Batches of at most two: 2 + 2 + 1, then nothing left to delete.
    assert [n for n in deletes if n] == [2, 2, 1]
    assert await _ids(database, Artifact.job_id) == {recent}
    assert await _ids(database, JobAttempt.job_id) == {recent}
    async with database.session() as session:
        statuses = dict((await session.execute(select(Job.id, Job.status))).all())
    assert statuses == {recent: "completed", pending: "pending", running: "running"}


async def test_retention_is_off_unless_configured(
    monkeypatch: pytest.MonkeyPatch, database: Database, registry: type[TaskRegistry]
) -> None:
    monkeypatch.delenv("TASKEXEC_RETENTION_SECONDS", raising=False)
    assert Settings(_env_file=None).retention_seconds is None
    assert WorkerConfig(concurrency=1).retention_seconds is None

    async def noop() -> None:
        pass

    registry.register_function("noop", noop)
    ancient = await _add_job(database, JobStatus.COMPLETED, finished_ago=timedelta(days=400))
    # Each loop pass would clean up before it claims: once this job ran, a pass has happened.
    probe = await _add_job(database, JobStatus.PENDING, task_name="noop", created_at=utcnow())
    async with _running_worker(database, _config()):

        async def probe_done() -> bool:
            async with database.session() as session:
                status = await session.scalar(select(Job.status).where(Job.id == probe))
            return status == JobStatus.COMPLETED

        await apoll_until(probe_done, within=WAIT, what="the probe job to run")
    assert ancient in await _job_ids(database)
    assert len(await _ids(database, Artifact.id)) == 2


def test_retention_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKEXEC_RETENTION_SECONDS", "86400")
    monkeypatch.setenv("TASKEXEC_RETENTION_BATCH", "50")
    settings = Settings(_env_file=None)
    assert (settings.retention_seconds, settings.retention_batch) == (86400.0, 50)
    with pytest.raises(pydantic.ValidationError):
        Settings(_env_file=None, retention_seconds=0)
    with pytest.raises(pydantic.ValidationError):
        Settings(_env_file=None, retention_batch=0)


async def test_the_service_worker_applies_the_retention_settings(
    database_url: str, database: Database
) -> None:
    old = await _add_job(database, JobStatus.FAILED, finished_ago=OLD)
    recent = await _add_job(database, JobStatus.FAILED, finished_ago=timedelta(seconds=1))
    settings = make_settings(database_url, retention_seconds=RETENTION, retention_batch=7)
    runtime = await start_runtime(settings, run_worker=True)
    try:
        assert runtime.worker is not None
        assert runtime.worker.config.retention_seconds == RETENTION
        assert runtime.worker.config.retention_batch == 7

        async def old_gone() -> bool:
            return old not in await _job_ids(database)

        await apoll_until(old_gone, within=WAIT, what="the old job to be deleted")
    finally:
        await runtime.close()
    assert await _job_ids(database) == {recent}
