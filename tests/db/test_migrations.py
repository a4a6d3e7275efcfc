"""Alembic migrations: no drift from the models, every revision reversible, on both backends."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.clock import new_id
from app.db.database import Database
from app.db.migrate import alembic_config, downgrade, upgrade
from app.db.models import Base
from app.jobs.models import Job, JobStatus
from tests.conftest import sqlite_url
from tests.jobs.helpers import scratch_postgres

APP_TABLES = set(Base.metadata.tables)
OLD_TIMESTAMP = datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
OLD_TIMESTAMP_TEXT = "2026-01-01 00:00:00.000001"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each backend, not yet migrated."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "fresh.db")
        return
    postgres_url: str = request.getfixturevalue("postgres_url")
    async with scratch_postgres(postgres_url) as url:
        yield url


def revisions_base_to_head() -> list[tuple[str, str]]:
    """(revision, the revision it downgrades to) for every revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))
    assert len(script.get_heads()) == 1, "migrations have more than one head"
    pairs: list[tuple[str, str]] = []
    for revision in script.walk_revisions():
        down = revision.down_revision
        assert down is None or isinstance(down, str), f"unexpected merge at {revision.revision}"
        pairs.append((revision.revision, down or "base"))
    pairs.reverse()
    return pairs


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "render_as_batch": connection.dialect.name == "sqlite"},
    )
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def schema_diff(url: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_diff)
    finally:
        await engine.dispose()


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_tables)
    finally:
        await engine.dispose()


async def current_revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_revision)
    finally:
        await engine.dispose()


async def test_head_matches_the_models(empty_url: str) -> None:
    await asyncio.to_thread(upgrade, empty_url)

    assert await schema_diff(empty_url) == []
    assert await table_names(empty_url) >= APP_TABLES
    # The same check `alembic check` runs in CI.
    await asyncio.to_thread(command.check, alembic_config(empty_url))


async def test_every_revision_downgrades_and_upgrades_again(empty_url: str) -> None:
    pairs = revisions_base_to_head()

    for revision, down in pairs:
        await asyncio.to_thread(upgrade, empty_url, revision)
        assert await current_revision(empty_url) == revision
        tables_after_upgrade = await table_names(empty_url)

        await asyncio.to_thread(downgrade, empty_url, down)
        assert await current_revision(empty_url) == (None if down == "base" else down)
        if revision == pairs[-1][0]:
            # One step below head the models no longer match: the drift check can see it.
            assert await schema_diff(empty_url) != []

        await asyncio.to_thread(upgrade, empty_url, revision)
        assert await current_revision(empty_url) == revision
        assert await table_names(empty_url) == tables_after_upgrade

    assert await schema_diff(empty_url) == []


async def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(
    empty_url: str,
) -> None:
    await asyncio.to_thread(upgrade, empty_url)

    await asyncio.to_thread(downgrade, empty_url, "base")
    assert (await table_names(empty_url)) & APP_TABLES == set()
    assert await current_revision(empty_url) is None

    await asyncio.to_thread(upgrade, empty_url)
    assert await table_names(empty_url) >= APP_TABLES
    assert await schema_diff(empty_url) == []


async def test_upgrade_is_idempotent(empty_url: str) -> None:
    await asyncio.to_thread(upgrade, empty_url)
    head = await current_revision(empty_url)

    await asyncio.to_thread(upgrade, empty_url)

    assert await current_revision(empty_url) == head
    assert head == revisions_base_to_head()[-1][0]


async def test_rows_written_at_the_first_revision_survive_upgrades(empty_url: str) -> None:
    first = revisions_base_to_head()[0][0]
    await asyncio.to_thread(upgrade, empty_url, first)
    job_id = new_id()
    engine = create_async_engine(empty_url)
    is_sqlite = engine.dialect.name == "sqlite"
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO jobs (id, task_name, status, params, priority, run_at,"
                    " created_at, attempts, max_attempts) VALUES (:id, 'old_task', 'pending',"
                    " '{\"n\": 1}', 0, :ts, :ts, 0, 1)"
                ),
                {"id": job_id, "ts": OLD_TIMESTAMP_TEXT if is_sqlite else OLD_TIMESTAMP},
            )
    finally:
        await engine.dispose()

    await asyncio.to_thread(upgrade, empty_url)

    database = Database(empty_url)
    try:
        async with database.session() as session:
            job = await session.get(Job, job_id)
    finally:
        await database.dispose()
    assert job is not None
    assert (job.task_name, job.status, job.params) == ("old_task", JobStatus.PENDING, {"n": 1})
    assert job.created_at == OLD_TIMESTAMP
