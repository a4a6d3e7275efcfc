"""A job's place in its flow, for the job page: its parent and root, and its first children.

Bounded whatever the flow's size: the children shown stop at `shown`, their count at `cap`
(the page links to the jobs list filtered by parent for the rest).
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.jobs.models import TERMINAL_STATUSES, Job

NODE_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = (
    Job.id,
    Job.task_name,
    Job.status,
    Job.map_index,
    Job.child_key,
    Job.attempts,
    Job.started_at,
    Job.finished_at,
    Job.result_artifact_id,
)
FINISHED = frozenset(status.value for status in TERMINAL_STATUSES)


@dataclass
class FlowView:
    parent: Row[Any] | None
    root: Row[Any] | None  # None when the job is a root itself
    children: list[Row[Any]]  # the first ones, in spawn order
    child_count: int  # stops at cap + 1
    cap: int

    @property
    def in_flow(self) -> bool:
        return self.root is not None or bool(self.children)

    @property
    def settled(self) -> bool:
        """Nothing shown can change any more (the page stops refreshing the panel)."""
        return all(child.status in FINISHED for child in self.children)


async def flow_view(session: AsyncSession, job: Job, *, shown: int, cap: int) -> FlowView:
    parent = await _node(session, job.parent_id)
    root = parent if job.root_id == job.parent_id else await _node(session, job.root_id)
    children = list(
        await session.execute(
            select(*NODE_COLUMNS)
            .where(Job.parent_id == job.id)
            .order_by(Job.created_at, Job.map_index, Job.id)
            .limit(shown)
        )
    )
    count = len(children)
    if count == shown:
        inner = select(Job.id).where(Job.parent_id == job.id).limit(cap + 1).subquery()
        count = int((await session.execute(select(func.count()).select_from(inner))).scalar_one())
    return FlowView(parent, root, children, count, cap)


async def _node(session: AsyncSession, job_id: str | None) -> Row[Any] | None:
    if job_id is None:
        return None
    return (await session.execute(select(*NODE_COLUMNS).where(Job.id == job_id))).one_or_none()
