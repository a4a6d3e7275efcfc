"""Values the database refuses (PostgreSQL's JSONB has no `\\u0000`): the job ends failed
`ResultNotStorable` at once instead of retrying the write forever."""

from collections.abc import Callable
from typing import Any

from app.artifacts.models import Artifact
from app.db.database import Database
from app.jobs.models import Job, JobStatus
from app.tasks.registry import TaskRegistry
from tests.jobs.helpers import artifacts_of, running_worker, wait_for_terminal

NUL_TEXT = "a\u0000b"


async def run_once(
    database_url: str,
    registry: type[TaskRegistry],
    fn: Callable[[], Any],
    **options: Any,
) -> tuple[Job, list[Artifact]]:
    """Register `fn`, run one job of it to its end; the stored job and its artifacts."""
    registry.register_function(fn.__name__, fn, **options)
    database = Database(database_url)
    try:
        async with running_worker(database) as (_, scheduler):
            job = await scheduler.submit(fn.__name__)
            stored = await wait_for_terminal(database, job.id)
        return stored, await artifacts_of(database, job.id)
    finally:
        await database.dispose()


async def test_a_result_postgresql_cannot_store_fails_the_job(
    postgres_database_url: str, registry: type[TaskRegistry]
) -> None:
    async def nul_result() -> str:
        return NUL_TEXT

    stored, [artifact] = await run_once(postgres_database_url, registry, nul_result, retries=2)

    assert stored.status == JobStatus.FAILED
    assert stored.error is not None
    assert stored.error["type"] == "ResultNotStorable"
    assert stored.error["message"].startswith("the task's result could not be stored: ")
    assert "\u0000" not in stored.error["message"]
    assert stored.attempts == 1
    assert artifact.data["result"] is None
    assert artifact.data["error"]["type"] == "ResultNotStorable"


async def test_an_error_message_postgresql_cannot_store_fails_the_job(
    postgres_database_url: str, registry: type[TaskRegistry]
) -> None:
    async def nul_error() -> None:
        raise ValueError(f"bad input {NUL_TEXT}")

    # Retries on: the refused write must not turn into a retry either.
    stored, _ = await run_once(
        postgres_database_url, registry, nul_error, retries=3, retry_backoff=0
    )

    assert stored.status == JobStatus.FAILED
    assert stored.error is not None
    assert stored.error["type"] == "ResultNotStorable"
    assert stored.error["message"].startswith("the task's error could not be stored: ")
    assert stored.attempts == 1


async def test_sqlite_stores_the_same_result_verbatim(
    sqlite_database_url: str, registry: type[TaskRegistry]
) -> None:
    async def nul_result() -> str:
        return NUL_TEXT

    stored, [artifact] = await run_once(sqlite_database_url, registry, nul_result)

    assert stored.status == JobStatus.COMPLETED
    assert artifact.data["result"] == NUL_TEXT
