"""A worker's claims: how many slots are free, and claiming jobs for them, from the claim loop
or joined to the transaction that records the ends of the attempts that freed them."""

import asyncio
import logging
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.batching import GroupCommit
from app.jobs.flow_host import WaitingParents
from app.jobs.limits import ConcurrencyLimits
from app.jobs.store import Effects, JobStore
from app.jobs.store.claimed import ClaimedJob
from app.jobs.worker_config import WorkerConfig
from app.jobs.worker_runs import JobRuns, RunningJob
from app.tasks.registry import Registry

logger = logging.getLogger(__name__)

Claimed = tuple[list[ClaimedJob], Effects]


class Claims:
    """Claims jobs for a worker's free slots; a slot promised to a claim in flight is not free.

    As a group-commit `Join`, it offers a claim for the free slots to every transaction that
    records ends, so a busy worker refills its slots without a transaction of its own.
    """

    def __init__(
        self,
        *,
        worker_id: str,
        config: WorkerConfig,
        registry: Registry,
        running: dict[str, RunningJob],
        parents: WaitingParents[RunningJob],
        runs: JobRuns,
        group: GroupCommit,
        notify: Callable[[], None],
    ) -> None:
        self.worker_id = worker_id
        self.config = config
        self.registry = registry
        self.running = running
        self.parents = parents
        self.runs = runs
        self.notify = notify
        self._writer = group.writer(self._claim_in, join=self)
        self._reserved = 0
        self._none_in_flight = asyncio.Event()
        self._none_in_flight.set()

    def free_slots(self) -> int:
        """Slots no job holds or is being claimed for, after woken parents took theirs
        (their children are done; they only need a slot)."""
        free = self.config.concurrency - len(self.running) - self._reserved
        return free - self.parents.grant(free) if free > 0 else free

    async def claim(self, limit: int) -> None:
        """Claim up to `limit` jobs and start them."""
        self._reserve(limit)
        try:
            claimed, effects = await self._writer.submit(limit)
        except BaseException:
            self._claimed(limit, [], Effects())
            raise
        self._claimed(limit, claimed, effects)

    async def settled(self) -> None:
        """Wait until no claim is in flight (its jobs are running, or it failed)."""
        await self._none_in_flight.wait()

    # Join (see `app.db.batching`) ------------------------------------------------------------

    def offer(self) -> int | None:
        if self.runs.stopping:
            return None
        free = self.free_slots()
        if free <= 0:
            return None
        self._reserve(free)
        return free

    def done(self, slots: int, result: "asyncio.Future[Claimed]") -> None:
        failure = None if result.cancelled() else result.exception()
        if result.cancelled() or failure is not None:
            logger.warning("a claim failed; the loop claims again", exc_info=failure)
            self._claimed(slots, [], Effects())
            self.notify()
            return
        self._claimed(slots, *result.result())

    # ------------------------------------------------------------------------------------------

    def _reserve(self, slots: int) -> None:
        self._reserved += slots
        self._none_in_flight.clear()

    def _claimed(self, slots: int, claimed: list[ClaimedJob], effects: Effects) -> None:
        """A claim for `slots` committed: run what it took (nothing if it failed)."""
        self._reserved -= slots
        if not self._reserved:
            self._none_in_flight.set()
        self.runs.store.after_commit.apply(effects)
        if self.runs.results is not None:
            self.runs.results.jobs_started(job.id for job in claimed)
        for job in claimed:
            self.runs.start(job)

    async def _claim_in(self, session: AsyncSession, limits: Sequence[int]) -> list[Claimed]:
        """The claims of one transaction (usually one)."""
        concurrency = ConcurrencyLimits.from_registry(self.registry, self.config.tag_limits)
        names = self.registry.names()
        return [
            await JobStore.claim_in(
                session,
                worker_id=self.worker_id,
                limit=limit,
                lease_seconds=self.config.lease_seconds,
                limits=concurrency,
                task_names=names,
            )
            for limit in limits
        ]
