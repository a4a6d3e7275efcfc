"""Per-task figures for the task pages: capped counts per status and run-time percentiles of
the newest completed runs, for any number of tasks in two statements."""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Integer, Select, bindparam, func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import Job
from app.ui.queries import TASK_STATUSES


@dataclass
class TaskStats:
    counts: dict[str, int]
    count_cap: int
    sample: int  # completed runs the durations come from (the newest ones)
    p50: float | None
    p95: float | None


async def task_stats(
    session: AsyncSession, task_name: str, *, count_cap: int, sample: int
) -> TaskStats:
    stats = await tasks_stats(session, [task_name], count_cap=count_cap, sample=sample)
    return stats[task_name]


async def tasks_stats(
    session: AsyncSession, task_names: Sequence[str], *, count_cap: int, sample: int
) -> dict[str, TaskStats]:
    """Counts per status and p50/p95 run times of the newest `sample` completed runs, for
    each task: two statements, whatever the number of tasks."""
    if not task_names:
        return {}
    names = {f"t{i}": name for i, name in enumerate(task_names)}
    count_row = (
        await session.execute(_task_counts_statement(len(names)), {**names, "cap": count_cap + 1})
    ).one()
    durations: dict[int, list[float]] = {i: [] for i in range(len(names))}
    statement = _durations_statement(session.get_bind().dialect.name, len(names))
    for index, seconds in await session.execute(statement, {**names, "sample": sample}):
        durations[int(index)].append(float(seconds))
    result = {}
    width = len(TASK_STATUSES)
    for i, name in enumerate(task_names):
        values = sorted(durations[i])
        result[name] = TaskStats(
            counts=dict(zip(TASK_STATUSES, count_row[i * width : (i + 1) * width], strict=True)),
            count_cap=count_cap,
            sample=len(values),
            p50=_percentile(values, 0.50),
            p95=_percentile(values, 0.95),
        )
    return result


@functools.lru_cache(maxsize=64)
def _task_counts_statement(tasks: int) -> Select[Any]:
    """Capped counts per status of tasks `:t0`..`:tN`, in one row (status order per task)."""
    counts = []
    for i in range(tasks):
        for status in TASK_STATUSES:
            rows = select(Job.id).where(Job.task_name == bindparam(f"t{i}"), Job.status == status)
            inner = rows.limit(bindparam("cap", type_=Integer)).subquery()
            counts.append(select(func.count()).select_from(inner).scalar_subquery())
    return select(*counts)


@functools.lru_cache(maxsize=64)
def _durations_statement(dialect: str, tasks: int) -> Select[Any]:
    """(task index, run time in seconds) of the newest completed jobs of tasks `:t0`..`:tN`,
    computed by the database (no datetime parsing per row; on SQLite through julianday, exact
    to some 30 microseconds)."""
    start, end = Job.started_at, Job.finished_at
    seconds: ColumnElement[Any] = (
        (func.julianday(end) - func.julianday(start)) * 86400.0
        if dialect == "sqlite"
        else func.extract("epoch", end - start)
    )
    parts = []
    for i in range(tasks):
        inner = (
            select(literal(i).label("task"), seconds.label("seconds"))
            .where(Job.task_name == bindparam(f"t{i}"), Job.status == "completed")
            .where(start.is_not(None), end.is_not(None))
            .order_by(Job.id.desc())
            .limit(bindparam("sample", type_=Integer))
            .subquery()
        )
        parts.append(select(inner.c.task, inner.c.seconds))
    return parts[0] if tasks == 1 else cast(Select[Any], union_all(*parts))


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return None
    rank = max(1, -(-len(values) * q // 1))
    return values[int(rank) - 1]
