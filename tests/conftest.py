"""Shared fixtures: a real SQLite file built by the real migrations, a clean task registry,
and an in-process app with its lifespan (worker included) running."""

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import URL, make_url

from app.core.settings import Settings
from app.db.database import Database
from app.db.migrate import upgrade
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry

POSTGRES_URL_ENV = "TASKEXEC_TEST_POSTGRES_URL"


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head by Alembic; tests get copies of it."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(sqlite_url(path))
    return path


def postgres_base_url() -> str:
    """The PostgreSQL server to test against; CI sets it, a developer without one skips."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_URL_ENV} must be set in CI")
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    return url


def asyncpg_dsn(url: str | URL) -> str:
    """A plain `postgresql://` DSN for asyncpg from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_test_database() -> Iterator[str]:
    """A PostgreSQL database of this test run, migrated to head by Alembic once."""
    base = make_url(postgres_base_url())
    name = f"taskexec_test_{os.getpid()}"

    async def recreate(create: bool) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(base))
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            if create:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(recreate(create=True))
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    try:
        yield url
    finally:
        asyncio.run(recreate(create=False))


def truncate_postgres(url: str) -> None:
    async def truncate() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(
                "TRUNCATE jobs, job_waits, artifacts, schedules, cache_entries,"
                " callback_deliveries, workers CASCADE"
            )
        finally:
            await conn.close()

    asyncio.run(truncate())


@pytest.fixture
def sqlite_database_url(tmp_path: Path, migrated_sqlite_template: Path) -> str:
    """A fresh, migrated SQLite database file for this test."""
    path = tmp_path / "taskexec.db"
    shutil.copy(migrated_sqlite_template, path)
    return sqlite_url(path)


@pytest.fixture
def postgres_database_url(postgres_test_database: str) -> str:
    """The run's PostgreSQL test database, emptied for this test."""
    truncate_postgres(postgres_test_database)
    return postgres_test_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database for this test: every test using it runs on both backends."""
    fixture = "sqlite_database_url" if request.param == "sqlite" else "postgres_database_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(autouse=True)
def registry() -> Iterator[type[TaskRegistry]]:
    """An empty task registry for each test; the previous contents come back afterwards."""
    saved = TaskRegistry.snapshot()
    TaskRegistry.clear()
    try:
        yield TaskRegistry
    finally:
        TaskRegistry.restore(saved)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for tests: nothing read from the process environment but what is given."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "auto_migrate": False,
        "max_concurrency": 4,
        "poll_interval": 0.2,
        "lease_seconds": 30.0,
        "shutdown_grace_seconds": 2.0,
        "load_examples": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def build_app(database_url: str, **overrides: Any) -> FastAPI:
    settings = make_settings(database_url, **overrides)
    return (
        ServiceBuilder(info=ServiceInfo(display_name="test service"), settings=settings)
        .with_health()
        .with_tasks()
        .build()
    )


@asynccontextmanager
async def running_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `app` with its lifespan (database, worker) running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client_factory(database_url: str) -> ClientFactory:
    """`async with client_factory(max_concurrency=2) as client:` runs app + worker on its DB."""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return running_client(build_app(database_url, **overrides))

    return factory


@pytest.fixture
async def client(client_factory: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with client_factory() as client:
        yield client


@pytest.fixture
def postgres_url() -> str:
    """The PostgreSQL server to test against (for tests that make their own databases)."""
    return postgres_base_url()
