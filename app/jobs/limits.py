"""Per-task and per-tag concurrency limits, enforced when jobs are claimed."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.jobs.events import EventType, event_row, insert_events
from app.jobs.models import Job
from app.jobs.repository import JobRepository
from app.tasks.registry import TaskRegistry

# Serialises limited claims across workers on PostgreSQL (a transaction-scoped advisory lock).
LIMITED_CLAIM_LOCK = 0x7A5C_E8EC


@dataclass(frozen=True)
class ConcurrencyLimits:
    """How many jobs of a task, or of all tasks with a tag, may run at once (all workers)."""

    task_limits: Mapping[str, int] = field(default_factory=dict)
    tag_limits: Mapping[str, int] = field(default_factory=dict)
    task_tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_registry(
        cls, registry: type[TaskRegistry], tag_limits: Mapping[str, int]
    ) -> "ConcurrencyLimits":
        task_limits: dict[str, int] = {}
        task_tags: dict[str, tuple[str, ...]] = {}
        for name, definition in registry.snapshot().items():
            task_tags[name] = definition.tags
            if definition.options.max_concurrency is not None:
                task_limits[name] = definition.options.max_concurrency
        return cls(task_limits, dict(tag_limits), task_tags)

    @property
    def active(self) -> bool:
        return bool(self.task_limits) or any(
            tag in self.tag_limits for tags in self.task_tags.values() for tag in tags
        )

    def has_room(self, task_name: str, counts: Mapping[str, int]) -> bool:
        limit = self.task_limits.get(task_name)
        if limit is not None and counts.get(task_name, 0) >= limit:
            return False
        for tag in self.task_tags.get(task_name, ()):
            tag_limit = self.tag_limits.get(tag)
            if tag_limit is not None and self._tag_count(tag, counts) >= tag_limit:
                return False
        return True

    def blocked(self, counts: Mapping[str, int]) -> set[str]:
        return {name for name in self.task_tags if not self.has_room(name, counts)}

    def _tag_count(self, tag: str, counts: Mapping[str, int]) -> int:
        return sum(n for name, n in counts.items() if tag in self.task_tags.get(name, ()))


async def claim_jobs(
    session: AsyncSession,
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    limits: ConcurrencyLimits,
) -> list[Job]:
    """Claim up to `limit` eligible jobs without exceeding any concurrency limit."""
    repo = JobRepository(session)
    now = utcnow()
    lease_until = now + timedelta(seconds=lease_seconds)
    if not limits.active:
        jobs = await repo.claim(worker_id=worker_id, limit=limit, now=now, lease_until=lease_until)
        await _started_events(session, jobs, worker_id)
        return jobs
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": LIMITED_CLAIM_LOCK}
        )
    counts = dict(await repo.active_counts())
    claimed: list[Job] = []
    # A few rounds: candidates skipped for a full limit make room for others further down.
    for _ in range(4):
        wanted = limit - len(claimed)
        candidates = await repo.pending_candidates(
            now=now, limit=wanted * 4, exclude_tasks=limits.blocked(counts)
        )
        picked: list[str] = []
        for job_id, task_name in candidates:
            if len(picked) == wanted:
                break
            if limits.has_room(task_name, counts):
                picked.append(job_id)
                counts[task_name] = counts.get(task_name, 0) + 1
        claimed += await repo.claim_ids(
            worker_id=worker_id, job_ids=picked, now=now, lease_until=lease_until
        )
        if len(claimed) >= limit or len(candidates) < wanted * 4:
            break
    claimed.sort(key=lambda job: (-job.priority, job.run_at, job.id))
    await _started_events(session, claimed, worker_id)
    return claimed


async def _started_events(session: AsyncSession, jobs: list[Job], worker_id: str) -> None:
    """One `started` event per claimed job (its number was taken by the claim itself)."""
    now = utcnow()
    await insert_events(
        session,
        [
            event_row(
                job.id,
                job.event_seq,
                EventType.STARTED,
                {"attempt": job.attempts, "worker_id": worker_id},
                now,
            )
            for job in jobs
        ],
    )
