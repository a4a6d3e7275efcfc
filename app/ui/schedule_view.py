"""The schedules page's reads: a page of schedules and, for each, the job it made last.

The last job is found through the (schedule_id, id) index of the jobs table (ids are in
creation order): one step of an index walk per schedule shown, all in one statement.
"""

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, bindparam, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import Job
from app.schedules.models import ScheduleRecord
from app.schedules.repository import ScheduleRepository


@dataclass
class LastFire:
    job_id: str
    status: str
    scheduled_for: datetime  # the fire time (now, for a fire by hand)


@dataclass
class SchedulePage:
    schedules: list[ScheduleRecord]
    last_fires: dict[str, LastFire]
    total: int
    offset: int
    limit: int

    @property
    def older(self) -> int | None:
        """The offset of the next page, if any."""
        after = self.offset + self.limit
        return after if after < self.total else None

    @property
    def newer(self) -> int | None:
        return max(0, self.offset - self.limit) if self.offset > 0 else None


async def schedule_page(
    session: AsyncSession, *, task_name: str | None, limit: int, offset: int
) -> SchedulePage:
    """Schedules, newest first (the API's order), with the job each one made last."""
    records, total = await ScheduleRepository(session).list_page(
        task_name=task_name, limit=limit, offset=offset
    )
    return SchedulePage(records, await last_fires(session, records), total, offset, limit)


async def last_fires(session: AsyncSession, records: list[ScheduleRecord]) -> dict[str, LastFire]:
    if not records:
        return {}
    values = {f"s{i}": record.id for i, record in enumerate(records)}
    rows = await session.execute(_last_fire_statement(len(records)), values)
    return {row.schedule_id: LastFire(row.job_id, row.status, row.scheduled_for) for row in rows}


@functools.lru_cache(maxsize=8)
def _last_fire_statement(count: int) -> Select[Any]:
    """(schedule id, job id, status, fire time) of the job each of schedules `:s0`..`:sN`
    made last (a fire by hand, or a catch-up fire made late, included)."""
    parts = []
    for i in range(count):
        inner = (
            select(
                Job.schedule_id.label("schedule_id"),
                Job.id.label("job_id"),
                Job.status.label("status"),
                Job.scheduled_for.label("scheduled_for"),
            )
            .where(Job.schedule_id == bindparam(f"s{i}"))
            .order_by(Job.id.desc())
            .limit(1)
            .subquery()
        )
        parts.append(select(*inner.c))
    return parts[0] if count == 1 else cast(Select[Any], union_all(*parts))
