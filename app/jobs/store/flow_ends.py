"""What a job's end means for its flow, in the transaction that ends it: the fan-in of its
waiting parent, `child_finished` on its root, its artifacts nested in the flow's artifact tree
(`app.jobs.store.artifact_links`), the cancel of its own unfinished descendants;
and cancelling a job with its whole subtree.

Lock order (PostgreSQL): a child's row, then its parent's, then its root's (parents in id
order), the order in which a parent's own end takes them, so ends of parents and of their
children do not deadlock.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.core.errors import ConflictError, NotFoundError
from app.jobs.events import EventType
from app.jobs.flow_decisions import (
    AwaitedEnd,
    FlowNode,
    ParentFacts,
    Wake,
    cancel_reach,
    decide_fan_in,
)
from app.jobs.models import Job, JobStatus
from app.jobs.notify import notify_new_jobs
from app.jobs.store import artifact_links
from app.jobs.store.effects import Effects
from app.jobs.store.flows import WAITS, Ended, chunks, facts_of, root_events
from app.jobs.store.rows import JOBS, TERMINAL, event_row, insert_events


async def after_ends(
    session: AsyncSession, ended: Sequence[Ended], *, cascade: bool = True
) -> Effects:
    """What jobs that ended in this transaction mean for their flows: `child_finished` on
    their root, the fan-in of their waiting parents, their result artifacts nested in the
    flow's artifact tree, and (`cascade`) the cancel of their own unfinished children."""
    effects = Effects()
    flow_jobs = [end for end in ended if end.parent_id is not None]
    if not flow_jobs and not cascade:
        return effects
    by_parent: dict[str, list[Ended]] = {}
    for end in flow_jobs:
        assert end.parent_id is not None  # noqa: S101 - filtered above
        by_parent.setdefault(end.parent_id, []).append(end)
    if by_parent:
        # Rows are locked from the child up (parents, then roots), as a parent's own end does.
        await session.execute(
            select(JOBS.c.id)
            .where(JOBS.c.id.in_(sorted(by_parent)))
            .order_by(JOBS.c.id)
            .with_for_update()
        )
    at = utcnow()  # once the locks are held, so event times follow their numbers
    await root_events(session, [f for f in map(facts_of, flow_jobs) if f is not None], effects)
    for parent_id in sorted(by_parent):
        await _fan_in(session, parent_id, by_parent[parent_id], at, effects)
    if not cascade:
        return effects
    with_children, unfinished = await _children_of_ended(session, [e.job_id for e in ended])
    # With the parents' rows held: a parent ending at the same time is seen once committed.
    await artifact_links.nest_ended(session, ended, with_children)
    # A parent that ended while it waited may keep wait rows: each goes when its child ends.
    for parent_id in unfinished:
        _, more = await cancel_tree(session, parent_id, at, include_target=False)
        effects.merge(more)
    return effects


async def _fan_in(
    session: AsyncSession, parent_id: str, ended: list[Ended], now: datetime, effects: Effects
) -> None:
    parent = (
        await session.execute(
            select(JOBS.c.status, JOBS.c.worker_id, JOBS.c.event_seq)
            .where(JOBS.c.id == parent_id)
            .with_for_update()
        )
    ).one_or_none()
    if parent is None:
        return
    ids = [end.job_id for end in ended]
    deleted = await session.execute(
        delete(WAITS)
        .where(WAITS.c.parent_id == parent_id, WAITS.c.child_id.in_(ids))
        .returning(WAITS.c.child_id, WAITS.c.fail_fast)
    )
    awaited = {child: fail_fast for child, fail_fast in deleted}
    if not awaited:
        return
    others_left = bool(await session.scalar(select(exists().where(WAITS.c.parent_id == parent_id))))
    facts = ParentFacts(JobStatus(parent.status), held=parent.worker_id is not None)
    ends = [AwaitedEnd(e.job_id, e.status, awaited[e.job_id]) for e in ended if e.job_id in awaited]
    verdict = decide_fan_in(facts, ends, others_left)
    if not isinstance(verdict, Wake):
        return
    await session.execute(delete(WAITS).where(WAITS.c.parent_id == parent_id))
    seq = parent.event_seq + 1
    data = {"reason": verdict.reason, "child_id": verdict.child_id, "requeued": verdict.requeue}
    values: dict[str, Any] = {"event_seq": seq}
    if verdict.requeue:
        values |= {"status": JobStatus.PENDING, "run_at": now}
        await notify_new_jobs(session)
        effects.wake = True
    await session.execute(update(JOBS).where(JOBS.c.id == parent_id).values(**values))
    await insert_events(session, [event_row(parent_id, seq, EventType.WOKEN, data, now)])
    effects.changed.append(parent_id)


_CHILDREN_OF = (
    select(JOBS.c.parent_id, func.max(case((JOBS.c.status.in_(TERMINAL), 0), else_=1)))
    .where(JOBS.c.parent_id.in_(bindparam("b_ids", expanding=True)))
    .group_by(JOBS.c.parent_id)
)


async def _children_of_ended(
    session: AsyncSession, job_ids: Sequence[str]
) -> tuple[set[str], list[str]]:
    """Which of `job_ids` have children, and (sorted) which have unfinished ones."""
    parents: set[str] = set()
    unfinished: set[str] = set()
    for chunk in chunks(job_ids):
        rows = await session.execute(_CHILDREN_OF, {"b_ids": list(chunk)})
        for parent_id, any_running in rows:
            parents.add(parent_id)
            if any_running:
                unfinished.add(parent_id)
    return parents, sorted(unfinished)


# Cancel a tree -------------------------------------------------------------------------------


async def cancel_tree(
    session: AsyncSession, job_id: str, now: datetime, *, include_target: bool = True
) -> tuple[Job | None, Effects]:
    """Cancel the job's unfinished descendants, deepest first, then (if asked) the job.
    Pending jobs and parked parents end `canceled` now; running ones and held parents are
    asked to stop (`canceling`)."""
    # Here, not at the top: lifecycle ends jobs through `attempts`, which calls `after_ends`.
    from app.jobs.store import lifecycle

    target = (await session.execute(select(JOBS.c.status).where(JOBS.c.id == job_id))).one_or_none()
    if target is None:
        raise NotFoundError(f"Job {job_id} does not exist.")
    if include_target and JobStatus(target.status).is_terminal:
        raise ConflictError(f"Job {job_id} is already {target.status}.")
    nodes = await _subtree(session, job_id)
    plan = cancel_reach(job_id, nodes, include_target=include_target)
    effects = Effects()
    ended: list[Ended] = []
    result: Job | None = None
    parked = {node.job_id for node in nodes if node.status is JobStatus.WAITING and not node.held}
    order = [node_id for node_id in plan.order if node_id != job_id]
    if include_target:
        order.append(job_id)  # last, and even if it was asked before (`canceling`)
    for node_id in order:
        await session.execute(delete(WAITS).where(WAITS.c.parent_id == node_id))
        if node_id in parked:
            # Nobody holds a parked parent: it is canceled at once, like a pending job.
            await session.execute(
                update(JOBS).where(JOBS.c.id == node_id).values(status=JobStatus.PENDING)
            )
        try:
            job, more = await lifecycle.cancel(session, node_id, now)
        except ConflictError:
            if node_id == job_id:
                raise
            continue  # it finished since the tree was read (its own transaction committed)
        effects.merge(more)
        if node_id == job_id:
            result = job
        if JobStatus(job.status) is JobStatus.CANCELED:
            ended.append(Ended.of(job, JobStatus.CANCELED, job.error, None))
    effects.merge(await after_ends(session, ended, cascade=False))
    return result, effects


async def _subtree(session: AsyncSession, job_id: str) -> list[FlowNode]:
    """The job and all its descendants, level by level."""
    columns = (JOBS.c.id, JOBS.c.parent_id, JOBS.c.status, JOBS.c.worker_id)
    first = (await session.execute(select(*columns).where(JOBS.c.id == job_id))).one()
    nodes = [
        FlowNode(first.id, first.parent_id, JobStatus(first.status), first.worker_id is not None)
    ]
    level = [job_id]
    while level:
        found: list[FlowNode] = []
        for chunk in chunks(level):
            rows = await session.execute(select(*columns).where(JOBS.c.parent_id.in_(list(chunk))))
            found += [
                FlowNode(r.id, r.parent_id, JobStatus(r.status), r.worker_id is not None)
                for r in rows
            ]
        nodes += found
        level = [node.job_id for node in found]
    return nodes
