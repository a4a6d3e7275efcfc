"""Database: the single writer path on SQLite, pragmas, commit and rollback, both backends."""

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs.models import Job
from tests.conftest import sqlite_url
from tests.helpers import apoll_until
from tests.jobs.helpers import count_jobs, make_job


@pytest.fixture
def any_database(database: Database) -> Database:
    """The migrated database of the backend under test (SQLite, then PostgreSQL)."""
    return database


async def read_then_insert(database: Database, task_name: str) -> int:
    """A transaction that reads before it writes: the pattern that deadlocks SQLite writers
    whose transactions start deferred."""
    async with database.transaction() as session:
        seen = await session.scalar(select(func.count()).select_from(Job))
        await asyncio.sleep(0)
        session.add(make_job(task_name=task_name))
        await session.flush()
        return int(seen or 0)


async def test_concurrent_transactions_are_serialised(any_database: Database) -> None:
    seen = await asyncio.gather(*(read_then_insert(any_database, f"t{n}") for n in range(50)))

    assert await count_jobs(any_database) == 50
    if any_database.is_sqlite:
        # One writer at a time: each transaction saw every commit before it.
        assert sorted(seen) == list(range(50))


async def test_writers_in_two_processes_wait_for_each_other(sqlite_database_url: str) -> None:
    """Two Database handles on one file stand in for two processes sharing it."""
    first, second = Database(sqlite_database_url), Database(sqlite_database_url)
    try:
        results = await asyncio.gather(
            *(read_then_insert(db, "shared") for _ in range(25) for db in (first, second))
        )
    finally:
        await first.dispose()
        await second.dispose()

    assert len(results) == 50
    check = Database(sqlite_database_url)
    try:
        assert await count_jobs(check, Job.task_name == "shared") == 50
    finally:
        await check.dispose()


async def test_sqlite_uses_wal_and_enforces_foreign_keys(sqlite_database_url: str) -> None:
    database = Database(sqlite_database_url)
    try:
        async with database.session() as session:
            journal_mode = await session.scalar(text("PRAGMA journal_mode"))
            foreign_keys = await session.scalar(text("PRAGMA foreign_keys"))
            busy_timeout = await session.scalar(text("PRAGMA busy_timeout"))
    finally:
        await database.dispose()

    assert str(journal_mode).lower() == "wal"
    assert foreign_keys == 1
    assert int(busy_timeout or 0) > 0


async def test_foreign_keys_reject_an_artifact_of_a_missing_job(any_database: Database) -> None:
    orphan = Artifact(id=new_id(), job_id=new_id(), data={}, created_at=utcnow())

    with pytest.raises(IntegrityError):
        async with any_database.transaction() as session:
            session.add(orphan)

    async with any_database.session() as session:
        assert await session.get(Artifact, orphan.id) is None


async def test_transaction_commits_on_success(any_database: Database) -> None:
    job = make_job()

    async with any_database.transaction() as session:
        session.add(job)

    assert await count_jobs(any_database, Job.id == job.id) == 1


async def test_transaction_rolls_back_on_error(any_database: Database) -> None:
    job = make_job()

    async def write_then_fail() -> None:
        async with any_database.transaction() as session:
            session.add(job)
            await session.flush()
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        await write_then_fail()

    assert await count_jobs(any_database, Job.id == job.id) == 0
    # The writer path is free again afterwards.
    async with any_database.transaction() as session:
        session.add(make_job())
    assert await count_jobs(any_database) == 1


async def test_transaction_rolls_back_when_cancelled(any_database: Database) -> None:
    entered = asyncio.Event()
    job = make_job()

    async def write_then_hang() -> None:
        async with any_database.transaction() as session:
            session.add(job)
            await session.flush()
            entered.set()
            await asyncio.wait_for(asyncio.Event().wait(), 10)

    writer = asyncio.create_task(write_then_hang())
    await asyncio.wait_for(entered.wait(), 10)
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer

    assert await count_jobs(any_database, Job.id == job.id) == 0
    async with any_database.transaction() as session:
        session.add(make_job())
    assert await count_jobs(any_database) == 1


async def test_ping(any_database: Database) -> None:
    await any_database.ping()


def sqlite_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


async def test_ping_fails_when_the_database_cannot_be_opened(tmp_path: Path) -> None:
    before = sqlite_threads()
    database = Database(sqlite_url(tmp_path / "missing-dir" / "x.db"))
    try:
        with pytest.raises(OperationalError):
            await database.ping()
    finally:
        await database.dispose()
        # aiosqlite stops the thread of a failed connection in the background; let it finish
        # while this loop is still open to receive its last message.
        await apoll_until(lambda: not (sqlite_threads() - before), what="the sqlite thread")


async def test_is_sqlite_flag(database: Database, database_url: str) -> None:
    assert database.is_sqlite is database_url.startswith("sqlite")
