"""Rows of the workers table for tests."""

from datetime import datetime

from sqlalchemy import select

from app.db.database import Database
from app.workers.models import WorkerRecord
from app.workers.repository import WorkerRepository
from tests.jobs.helpers import ago

# A worker id naming another machine: only its heartbeat row can tell that it died.
OTHER_HOST_WORKER = "otherhost:4242:1-abcdef"


async def add_worker(
    database: Database,
    worker_id: str = OTHER_HOST_WORKER,
    *,
    started_at: datetime | None = None,
    last_seen_at: datetime | None = None,
    stopped_at: datetime | None = None,
    stop_reason: str | None = None,
    running: int = 0,
) -> WorkerRecord:
    started = started_at or ago(60)
    record = WorkerRecord(
        id=worker_id,
        host=worker_id.partition(":")[0],
        pid=4242,
        tasks=["noop"],
        started_at=started,
        last_seen_at=last_seen_at or started,
        running=running,
        stopped_at=stopped_at,
        stop_reason=stop_reason,
    )
    async with database.transaction() as session:
        await WorkerRepository(session).register(record)
    return record


async def fetch_worker(database: Database, worker_id: str) -> WorkerRecord | None:
    async with database.session() as session:
        found: WorkerRecord | None = await session.scalar(
            select(WorkerRecord).where(WorkerRecord.id == worker_id)
        )
        return found
