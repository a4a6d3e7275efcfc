"""A worker's periodic upkeep: lease renewal, recovery of dead workers' jobs, retention."""

import logging
from collections.abc import Callable, Collection, Sequence
from datetime import timedelta

from app.core.clock import utcnow
from app.db.database import Database
from app.jobs.repository import JobRepository
from app.jobs.store import JobStore
from app.jobs.worker_config import WorkerConfig
from app.jobs.worker_ids import is_dead_local_worker

logger = logging.getLogger(__name__)

# Jobs `JobStore.recover_lost` resolves per call, and calls per expired-worker check.
RECOVER_BATCH = 100
RECOVER_ROUNDS = 20
# Retention batches per cleanup turn.
CLEANUP_ROUNDS = 20


class Upkeep:
    """What a worker does every heartbeat (and every retention interval)."""

    def __init__(
        self, database: Database, store: JobStore, worker_id: str, config: WorkerConfig
    ) -> None:
        self.database = database
        self.store = store
        self.worker_id = worker_id
        self.config = config

    async def heartbeat(
        self,
        job_ids: Sequence[str],
        lingering: Collection[str],
        cancel_local: Callable[[str], bool],
    ) -> None:
        """Renew the leases of `job_ids`; stop those whose cancel was asked; warn about
        leases lost (except `lingering` timed-out threads, which hold no lease)."""
        if not job_ids:
            return
        held, canceled = await self.store.renew(self.worker_id, job_ids, self.config.lease_seconds)
        for job_id in canceled:
            cancel_local(job_id)
        for job_id in set(job_ids) - held - set(lingering):
            logger.warning("lost the lease of a running job", extra={"job_id": job_id})

    async def recover_dead_local_workers(self) -> None:
        """Recover the jobs of workers on this host whose process is gone."""
        async with self.database.read_session() as session:
            worker_ids = await JobRepository(session).running_worker_ids()
        dead = [w for w in worker_ids if w != self.worker_id and is_dead_local_worker(w)]
        if dead:
            await self.store.recover_lost(dead)

    async def recover(self, dead_worker_ids: Sequence[str]) -> None:
        """Re-queue (or end) every job of these dead workers, a batch at a time."""
        for _ in range(RECOVER_ROUNDS):
            effects = await self.store.recover_lost(dead_worker_ids)
            if len(effects.changed) < RECOVER_BATCH:
                return

    async def recover_lost(self) -> None:
        """Re-queue or end jobs whose worker died (their lease expired)."""
        await self.store.recover_lost()

    async def cleanup(self) -> None:
        """Delete finished jobs (and their artifacts) past the retention age, in batches."""
        assert self.config.retention_seconds is not None  # noqa: S101 - checked by the loop
        cutoff = utcnow() - timedelta(seconds=self.config.retention_seconds)
        total = 0
        batch = self.config.retention_batch
        for _ in range(CLEANUP_ROUNDS):
            deleted = await self.store.delete_finished_before(cutoff, batch)
            total += deleted
            if deleted < batch:
                break
        if total:
            logger.info("retention cleanup", extra={"deleted_jobs": total})
