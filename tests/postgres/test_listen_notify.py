"""LISTEN/NOTIFY: notifications follow transactions, survive a dropped connection, and carry a
cancel from an API process to the worker process that runs the job."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from app.core.clock import new_id
from app.db.database import Database
from app.jobs.notify import PostgresListener, notify_cancel, notify_new_jobs
from tests.conftest import asyncpg_dsn
from tests.helpers import apoll_until, wait_job_sync, wait_status_sync
from tests.postgres.conftest import Processes

pytestmark = pytest.mark.postgres

WAIT = 10.0
JOBS = "jobs"
CONNECTED = "connected"


@dataclass
class Heard:
    """What the listener passed on, in order: JOBS for new jobs, a job id for a cancel,
    CONNECTED each time it (re)connects."""

    queue: "asyncio.Queue[str]" = field(default_factory=asyncio.Queue)

    def on_jobs(self) -> None:
        self.queue.put_nowait(JOBS)

    def on_cancel(self, job_id: str) -> None:
        self.queue.put_nowait(job_id)

    def on_reconnect(self) -> None:
        self.queue.put_nowait(CONNECTED)

    async def next(self) -> str:
        return await asyncio.wait_for(self.queue.get(), WAIT)


@pytest.fixture
async def database(pg_database: str) -> AsyncIterator[Database]:
    db = Database(pg_database)
    try:
        yield db
    finally:
        await db.dispose()


async def listening_backends(url: str) -> list[int]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


async def wait_for_one_new_backend(url: str, *, old: int) -> None:
    """Wait until the only listening backend is a new one (the old one may take a moment to
    leave `pg_stat_activity`)."""

    async def replaced() -> bool:
        backends = await listening_backends(url)
        return len(backends) == 1 and backends != [old]

    await apoll_until(replaced, within=WAIT, what=f"one listening backend other than {old}")


async def terminate(url: str, pid: int) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid) is True
    finally:
        await conn.close()


async def test_listener_follows_commits_and_reconnects(
    pg_database: str, database: Database
) -> None:
    heard = Heard()
    listener = PostgresListener(
        database.url,
        on_jobs=heard.on_jobs,
        on_cancel=heard.on_cancel,
        on_reconnect=heard.on_reconnect,
    )
    await listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), WAIT)
        # On connecting, the listener says so: the worker then looks for jobs queued meanwhile.
        assert await heard.next() == CONNECTED

        async with database.transaction() as session:
            await notify_new_jobs(session)
        assert await heard.next() == JOBS

        # Rolled back: nothing is sent. The marker committed after it is the next thing heard.
        async with database.session() as session:
            await notify_new_jobs(session)
            await notify_cancel(session, new_id())
            await session.rollback()
        marker = new_id()
        async with database.transaction() as session:
            await notify_cancel(session, marker)
        assert await heard.next() == marker

        (backend,) = await listening_backends(pg_database)
        await terminate(pg_database, backend)
        # Reconnected: it listens again and says so.
        assert await heard.next() == CONNECTED
        assert listener.connected.is_set()
        await wait_for_one_new_backend(pg_database, old=backend)

        job_id = new_id()
        async with database.transaction() as session:
            await notify_cancel(session, job_id)
        assert await heard.next() == job_id
        async with database.transaction() as session:
            await notify_new_jobs(session)
        assert await heard.next() == JOBS
        assert heard.queue.empty()
    finally:
        await listener.stop()


def test_cancel_reaches_the_worker_process(processes: Processes, tmp_path: Path) -> None:
    # Without a notification the worker would learn of the cancel at its next lease renewal,
    # every 20 s (a third of the lease), and of new jobs no sooner.
    processes.worker(env={"TASKEXEC_POLL_INTERVAL": "30", "TASKEXEC_LEASE_SECONDS": "60"})
    api = processes.api()
    with api.client() as client:
        response = client.post("/api/v1/tasks/pg_nap/$execute", json={"params": {"seconds": 60}})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        wait_status_sync(client, job_id, frozenset({"running"}), within=WAIT)
        canceled = client.post(f"/api/v1/jobs/{job_id}/$cancel")
        assert canceled.status_code == 200, canceled.text
        assert canceled.json()["status"] == "canceling"
        job = wait_job_sync(client, job_id, within=WAIT)
        assert job["status"] == "canceled", job
        assert job["cancel_requested"] is True
        assert job["error"]["type"] == "JobCancelledError"
        artifact = client.get(f"/api/v1/artifacts/{job['result']}")
        assert artifact.status_code == 200, artifact.text
        assert artifact.json()["job_id"] == job_id
        assert artifact.json()["data"]["error"]["type"] == "JobCancelledError"
