"""`WorkerPresence`: a worker's row in the workers table, and finding workers that died.

A worker registers at start, refreshes `last_seen_at` and `running` with each heartbeat and
sets `stopped_at` when it stops cleanly. One whose row was not refreshed for the worker
timeout (`TASKEXEC_WORKER_TIMEOUT_SECONDS`) is dead, on whatever host it ran: the first
worker to notice recovers its jobs at once (without waiting for their leases) and marks it
"expired".
"""

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import timedelta

from app.core.clock import utcnow
from app.db.database import Database
from app.workers.models import WorkerRecord
from app.workers.repository import WorkerRepository

logger = logging.getLogger(__name__)

# Stopped and expired workers are listed for a day, then forgotten.
STOPPED_KEPT = timedelta(days=1)

RecoverJobs = Callable[[Sequence[str]], Awaitable[None]]


class WorkerPresence:
    """One worker's heartbeat row; also the check for other workers' expired rows."""

    def __init__(
        self, database: Database, worker_id: str, *, timeout: float, tasks: Collection[str]
    ) -> None:
        self.database = database
        self.worker_id = worker_id
        self.timeout = timedelta(seconds=timeout)
        self.tasks = sorted(tasks)

    async def register(self, running: int = 0) -> None:
        now = utcnow()
        record = WorkerRecord(
            id=self.worker_id,
            host=socket.gethostname()[:255],
            pid=os.getpid(),
            tasks=self.tasks,
            started_at=now,
            last_seen_at=now,
            running=running,
            stopped_at=None,
            stop_reason=None,
        )
        async with self.database.transaction() as session:
            await WorkerRepository(session).register(record)

    async def beat(self, running: int) -> None:
        """Refresh this worker's row (registering again if it was removed)."""
        async with self.database.transaction() as session:
            found = await WorkerRepository(session).beat(self.worker_id, utcnow(), running)
        if not found:
            await self.register(running)

    async def stop(self) -> None:
        async with self.database.transaction() as session:
            await WorkerRepository(session).mark_stopped(
                [self.worker_id], utcnow(), "stopped", seen_before=None
            )

    async def recover_expired(self, recover_jobs: RecoverJobs) -> list[str]:
        """Recover the jobs of workers whose rows expired, then mark them expired."""
        now = utcnow()
        cutoff = now - self.timeout
        async with self.database.read_session() as session:
            expired = await WorkerRepository(session).expired(cutoff, besides=self.worker_id)
        if expired:
            logger.warning(
                "workers stopped beating; recovering their jobs", extra={"workers": expired}
            )
            await recover_jobs(expired)
        async with self.database.transaction() as session:
            repository = WorkerRepository(session)
            await repository.mark_stopped(expired, now, "expired", seen_before=cutoff)
            await repository.prune(now - STOPPED_KEPT)
        return expired
