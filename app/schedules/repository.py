"""All schedule SQL. Flushes, never commits."""

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.models import TERMINAL_STATUSES, Job
from app.schedules.models import ScheduleRecord


class ScheduleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, schedule: ScheduleRecord) -> ScheduleRecord:
        self.session.add(schedule)
        await self.session.flush()
        return schedule

    async def get(self, schedule_id: str, *, for_update: bool = False) -> ScheduleRecord | None:
        query = select(ScheduleRecord).where(ScheduleRecord.id == schedule_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def get_by_code_key(self, code_key: str) -> ScheduleRecord | None:
        query = select(ScheduleRecord).where(ScheduleRecord.code_key == code_key)
        return (await self.session.scalars(query.with_for_update())).one_or_none()

    async def code_defined(self) -> list[ScheduleRecord]:
        rows = await self.session.scalars(
            select(ScheduleRecord).where(ScheduleRecord.code_key.is_not(None))
        )
        return list(rows)

    async def list_page(
        self, *, task_name: str | None, limit: int, offset: int
    ) -> tuple[list[ScheduleRecord], int]:
        conditions = []
        if task_name is not None:
            conditions.append(ScheduleRecord.task_name == task_name)
        rows = await self.session.scalars(
            select(ScheduleRecord)
            .where(*conditions)
            .order_by(ScheduleRecord.id.desc())
            .limit(limit)
            .offset(offset)
        )
        total = await self.session.scalar(
            select(func.count()).select_from(ScheduleRecord).where(*conditions)
        )
        return list(rows), total or 0

    async def delete(self, schedule: ScheduleRecord) -> None:
        await self.session.delete(schedule)
        await self.session.flush()

    async def due(
        self, *, now: datetime, task_names: Collection[str], limit: int
    ) -> list[ScheduleRecord]:
        """Enabled schedules of these tasks whose next fire time has come, earliest first."""
        if not task_names:
            return []
        rows = await self.session.scalars(
            select(ScheduleRecord)
            .where(
                ScheduleRecord.enabled.is_(True),
                ScheduleRecord.next_fire_at <= now,
                ScheduleRecord.task_name.in_(list(task_names)),
            )
            .order_by(ScheduleRecord.next_fire_at, ScheduleRecord.id)
            .limit(limit)
        )
        return list(rows)

    async def earliest_next_fire(self, task_names: Collection[str]) -> datetime | None:
        if not task_names:
            return None
        value: datetime | None = await self.session.scalar(
            select(func.min(ScheduleRecord.next_fire_at)).where(
                ScheduleRecord.enabled.is_(True),
                ScheduleRecord.task_name.in_(list(task_names)),
            )
        )
        return value

    async def advance(
        self, schedule_id: str, *, expected: datetime, values: dict[str, Any]
    ) -> bool:
        """Move a schedule on, only if no other process moved it since `expected` was read."""
        result = await self.session.execute(
            update(ScheduleRecord)
            .where(ScheduleRecord.id == schedule_id, ScheduleRecord.next_fire_at == expected)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def has_unfinished_fire(self, schedule_id: str) -> bool:
        """Whether a job this schedule made is still pending or running."""
        row = await self.session.scalar(
            select(Job.id)
            .where(
                Job.schedule_id == schedule_id,
                Job.status.not_in([status.value for status in TERMINAL_STATUSES]),
            )
            .limit(1)
        )
        return row is not None
