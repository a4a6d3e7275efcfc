"""Reading a flow as a tree: a job and its descendants, level by level, bounded in size."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFoundError
from app.jobs.models import Job, JobStatus
from app.jobs.schemas import JobError, JobTree, JobTreeNode

_COLUMNS = (
    Job.id,
    Job.parent_id,
    Job.task_name,
    Job.status,
    Job.child_key,
    Job.map_index,
    Job.attempts,
    Job.created_at,
    Job.started_at,
    Job.finished_at,
    Job.result_artifact_id,
    Job.error,
)
# Parent ids per statement: well under SQLite's and PostgreSQL's bound-parameter limits.
_CHUNK = 1000


async def read_tree(session: AsyncSession, job_id: str, max_nodes: int) -> JobTree:
    """`job_id` and its descendants, nested. Each level is read in one statement (per 1,000
    parents) in creation order, until `max_nodes` nodes are read."""
    first = (await session.execute(select(*_COLUMNS).where(Job.id == job_id))).one_or_none()
    if first is None:
        raise NotFoundError(f"Job {job_id} does not exist.")
    nodes = {job_id: _node(first)}
    order: list[tuple[str, str]] = []
    level = [job_id]
    truncated = False
    while level and not truncated:
        budget = max_nodes - len(nodes)
        counts, rows = await _children_of(session, level, budget + 1)
        for parent_id, count in counts.items():
            nodes[parent_id].child_count = count
        if len(rows) > budget:
            rows, truncated = rows[:budget], True
        level = []
        for row in rows:
            nodes[row.id] = _node(row)
            order.append((row.parent_id, row.id))
            level.append(row.id)
    for parent, child in sorted(order, key=lambda pair: _sort_key(nodes[pair[1]])):
        nodes[parent].children.append(nodes[child])
    return JobTree(root=nodes[job_id], node_count=len(nodes), truncated=truncated)


async def _children_of(
    session: AsyncSession, parent_ids: Sequence[str], limit: int
) -> tuple[dict[str, int], list[Row[Any]]]:
    """How many children each parent has, and up to `limit` of them in spawn order."""
    counts: dict[str, int] = {}
    rows: list[Row[Any]] = []
    for start in range(0, len(parent_ids), _CHUNK):
        chunk = list(parent_ids[start : start + _CHUNK])
        counted = await session.execute(
            select(Job.parent_id, func.count())
            .where(Job.parent_id.in_(chunk))
            .group_by(Job.parent_id)
        )
        counts.update({parent_id: count for parent_id, count in counted if parent_id})
        if len(rows) < limit:
            query = (
                select(*_COLUMNS)
                .where(Job.parent_id.in_(chunk))
                .order_by(Job.created_at, Job.map_index, Job.id)
                .limit(limit - len(rows))
            )
            rows += list(await session.execute(query))
    return counts, rows


def _node(row: Row[Any]) -> JobTreeNode:
    duration = None
    if row.started_at is not None and row.finished_at is not None:
        duration = max(0.0, (row.finished_at - row.started_at).total_seconds())
    return JobTreeNode(
        id=row.id,
        task_name=row.task_name,
        status=JobStatus(row.status),
        child_key=row.child_key,
        map_index=row.map_index,
        attempts=row.attempts,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_seconds=duration,
        result=row.result_artifact_id,
        error=None if row.error is None else JobError.model_validate(row.error),
        child_count=0,
        children=[],
    )


def _sort_key(node: JobTreeNode) -> tuple[datetime, int, str]:
    """Children in spawn order; the items of one map (queued together) by index."""
    return (node.created_at, -1 if node.map_index is None else node.map_index, node.id)
