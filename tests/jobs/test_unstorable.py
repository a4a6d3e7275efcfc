"""Values the database refuses (PostgreSQL's JSONB has no `\\u0000`): the job ends failed
`ResultNotStorable` at once instead of retrying the write forever."""

from app.db.database import Database
from app.jobs.models import JobStatus
from app.tasks.registry import TaskRegistry
from tests.jobs.helpers import artifacts_of, running_worker, wait_for_terminal

NUL_TEXT = "a\u0000b"


async def test_a_result_postgresql_cannot_store_fails_the_job(
    postgres_database_url: str, registry: type[TaskRegistry]
) -> None:
    async def nul_result() -> str:
        return NUL_TEXT

    registry.register_function("nul_result", nul_result, retries=2)
    database = Database(postgres_database_url)
    try:
        async with running_worker(database) as (_, scheduler):
            job = await scheduler.submit("nul_result")
            stored = await wait_for_terminal(database, job.id)
        [artifact] = await artifacts_of(database, job.id)
    finally:
        await database.dispose()

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
    registry.register_function("nul_error", nul_error, retries=3, retry_backoff=0)
    database = Database(postgres_database_url)
    try:
        async with running_worker(database) as (_, scheduler):
            job = await scheduler.submit("nul_error")
            stored = await wait_for_terminal(database, job.id)
    finally:
        await database.dispose()

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

    registry.register_function("nul_result", nul_result)
    database = Database(sqlite_database_url)
    try:
        async with running_worker(database) as (_, scheduler):
            job = await scheduler.submit("nul_result")
            stored = await wait_for_terminal(database, job.id)
        [artifact] = await artifacts_of(database, job.id)
    finally:
        await database.dispose()

    assert stored.status == JobStatus.COMPLETED
    assert artifact.data["result"] == NUL_TEXT
