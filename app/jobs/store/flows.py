"""The store's flow changes: queue children, put a parent to wait, resume it, the root's
child events (`app.jobs.store.flow_ends` has what a job's end means for its flow).

Each function writes in the caller's transaction and returns the `Effects` to apply after it
commits. What to do is decided by `app.jobs.flow_decisions`; this module only writes.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.errors import NotFoundError
from app.db.base import table_of
from app.jobs.context import JobCancelledError
from app.jobs.events import EventType
from app.jobs.flow_decisions import (
    ChildFacts,
    ChildState,
    Ready,
    StoredChild,
    begin_wait,
    child_event,
)
from app.jobs.models import Job, JobStatus, JobWait
from app.jobs.store.claimed import ClaimedJob, JobFacts
from app.jobs.store.effects import Effects
from app.jobs.store.queueing import queued_effects, record_created
from app.jobs.store.rows import (
    ARTIFACTS,
    JOBS,
    append_events,
    event_row,
    insert_events,
    job_row,
)

WAITS = table_of(JobWait)
_CHUNK = 500  # rows or ids per statement, well under the bound-parameter limits


class LeaseLostError(RuntimeError):
    """This worker no longer holds the parent (its lease expired and the job moved on)."""


@dataclass(frozen=True)
class Ended:
    """A job that ended in this transaction, as the flow bookkeeping needs it."""

    job_id: str
    task_name: str
    parent_id: str | None
    root_id: str | None
    map_index: int | None
    attempt: int
    status: JobStatus
    error: dict[str, Any] | None = None
    artifact_id: str | None = None

    @classmethod
    def of(cls, job: JobFacts, status: JobStatus, error: Any, artifact_id: str | None) -> "Ended":
        return cls(
            job.id,
            job.task_name,
            job.parent_id,
            job.root_id,
            job.map_index,
            job.attempts,
            status,
            error,
            artifact_id,
        )


def chunks(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


# Queue children --------------------------------------------------------------------------


async def create_children(
    session: AsyncSession, worker_id: str, parent_id: str, children: Sequence[Job]
) -> tuple[list[StoredChild], Effects]:
    """Queue the children no earlier run of the parent made (their ids are derived from their
    keys, so a conflict means the child exists); the stored row of each child, in order."""
    effects = Effects()
    holder = await session.scalar(select(JOBS.c.worker_id).where(JOBS.c.id == parent_id))
    if holder != worker_id:
        raise LeaseLostError(f"job {parent_id} is no longer held by this worker")
    for job in children:
        job.event_seq = 1  # the `created` event below
    inserted: set[str] = set()
    dialect = session.get_bind().dialect.name
    make_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for chunk in chunks(children):
        stmt = (
            make_insert(JOBS)
            .values([job_row(job) for job in chunk])
            .on_conflict_do_nothing()
            .returning(JOBS.c.id)
        )
        inserted |= set((await session.execute(stmt)).scalars())
    new = [job for job in children if job.id in inserted]
    if new:
        await record_created(session, new)
        effects.merge(queued_effects(new))
    stored: dict[str, StoredChild] = {}
    for chunk in chunks([job.id for job in children]):
        rows = await session.execute(
            select(JOBS.c.id, JOBS.c.task_name, JOBS.c.request_hash, JOBS.c.status).where(
                JOBS.c.id.in_(list(chunk))
            )
        )
        for job_id, task_name, request_hash, status in rows:
            stored[job_id] = StoredChild(job_id, task_name, request_hash, JobStatus(status))
    return [stored[job.id] for job in children], effects


# Wait, wake, resume --------------------------------------------------------------------------


async def read_children(session: AsyncSession, child_ids: Sequence[str]) -> list[ChildState]:
    """The children's states with their stored results, in the order asked."""
    states: dict[str, ChildState] = {}
    for chunk in chunks(child_ids):
        rows = await session.execute(
            select(JOBS.c.id, JOBS.c.status, JOBS.c.error, ARTIFACTS.c.data)
            .select_from(JOBS.outerjoin(ARTIFACTS, ARTIFACTS.c.id == JOBS.c.result_artifact_id))
            .where(JOBS.c.id.in_(list(chunk)))
        )
        for job_id, status, error, data in rows:
            result = data.get("result") if isinstance(data, dict) else None
            states[job_id] = ChildState(job_id, JobStatus(status), error, result)
    missing = [job_id for job_id in child_ids if job_id not in states]
    if missing:
        raise NotFoundError(f"child jobs {missing[:5]} do not exist (deleted?)")
    return [states[job_id] for job_id in child_ids]


async def begin_wait_in(
    session: AsyncSession,
    worker_id: str,
    parent_id: str,
    child_ids: Sequence[str],
    *,
    fail_fast: bool,
    park: bool,
) -> tuple[list[ChildState] | None, Effects]:
    """Put the parent to wait for the unfinished children (None), or, when nothing is left to
    wait for, the children's states at once. A held parent keeps its worker and lease; a
    parked one leaves them (its attempt is not counted) and is re-queued by the fan-in."""
    parent = (
        await session.execute(
            select(JOBS.c.status, JOBS.c.worker_id, JOBS.c.event_seq)
            .where(JOBS.c.id == parent_id)
            .with_for_update()
        )
    ).one_or_none()
    if parent is None or parent.worker_id != worker_id:
        raise LeaseLostError(f"job {parent_id} is no longer held by this worker")
    if parent.status != JobStatus.RUNNING:
        raise JobCancelledError(f"job {parent_id} was canceled")
    states = await read_children(session, child_ids)
    verdict = begin_wait(states, return_exceptions=not fail_fast)
    if isinstance(verdict, Ready):
        return states, Effects()
    await session.execute(delete(WAITS).where(WAITS.c.parent_id == parent_id))
    await session.execute(
        insert(WAITS),
        [
            {"parent_id": parent_id, "child_id": c, "fail_fast": fail_fast}
            for c in verdict.child_ids
        ],
    )
    seq = parent.event_seq + 1
    values: dict[str, Any] = {"status": JobStatus.WAITING, "event_seq": seq}
    if park:
        values |= {"worker_id": None, "lease_expires_at": None, "attempts": JOBS.c.attempts - 1}
    await session.execute(update(JOBS).where(JOBS.c.id == parent_id).values(**values))
    data = {"children": len(verdict.child_ids), "fail_fast": fail_fast, "parked": park}
    await insert_events(session, [event_row(parent_id, seq, EventType.WAITING, data, utcnow())])
    return None, Effects(changed=[parent_id], wake=True)


async def wait_state(session: AsyncSession, parent_id: str) -> str:
    """`woken` (awaits nothing more), `waiting`, or the parent's status when it left waiting."""
    status = await session.scalar(select(JOBS.c.status).where(JOBS.c.id == parent_id))
    if status is None:
        return "deleted"
    if status != JobStatus.WAITING:
        return str(status)
    left = await session.scalar(select(exists().where(WAITS.c.parent_id == parent_id)))
    return "waiting" if left else "woken"


async def resume_in(
    session: AsyncSession, worker_id: str, parent_ids: Sequence[str]
) -> tuple[list[str], Effects]:
    """Woken parents of this worker take a slot again: `waiting` -> `running`."""
    if not parent_ids:
        return [], Effects()
    woken = ~exists().where(WAITS.c.parent_id == JOBS.c.id)
    rows = await session.execute(
        update(JOBS)
        .where(
            JOBS.c.id.in_(list(parent_ids)),
            JOBS.c.worker_id == worker_id,
            JOBS.c.status == JobStatus.WAITING,
            woken,
        )
        .values(status=JobStatus.RUNNING, event_seq=JOBS.c.event_seq + 1)
        .returning(JOBS.c.id, JOBS.c.event_seq)
    )
    at = utcnow()
    events = [event_row(job_id, seq, EventType.RESUMED, {}, at) for job_id, seq in rows]
    await insert_events(session, events)
    resumed = [row["job_id"] for row in events]
    return resumed, Effects(changed=resumed)


def facts_of(end: Ended) -> ChildFacts | None:
    if end.parent_id is None or end.root_id is None:
        return None
    return ChildFacts(
        end.job_id,
        end.task_name,
        end.parent_id,
        end.root_id,
        end.map_index,
        end.attempt,
        end.status,
        end.error,
        end.artifact_id,
    )


async def root_events(session: AsyncSession, facts: Sequence[ChildFacts], effects: Effects) -> None:
    """Append each child's `child_started` / `child_finished` to its root's events."""
    by_root: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for child in facts:
        by_root.setdefault(child.root_id, []).append(child_event(child))
    for root_id in sorted(by_root):
        if await append_events(session, root_id, by_root[root_id]):
            effects.changed.append(root_id)


async def children_started(session: AsyncSession, jobs: Sequence[ClaimedJob]) -> Effects:
    """`child_started` on the roots of claimed children (in the claim's transaction)."""
    effects = Effects()
    facts = [
        ChildFacts(
            job.id,
            job.task_name,
            job.parent_id,
            job.root_id,
            job.map_index,
            job.attempts,
            JobStatus.RUNNING,
        )
        for job in jobs
        if job.parent_id is not None and job.root_id is not None
    ]
    if facts:
        await root_events(session, facts, effects)
    return effects
