"""Schedules defined in code (`schedule=` on a task), upserted at every start-up.

Each such schedule is the row whose `code_key` is its task's name. Every process upserts the
schedules of the tasks it knows; the unique `code_key` makes concurrent first inserts safe. A
changed definition updates the row (a changed timing starts over from now); `enabled` is taken
from code only when the row is made, so a pause over REST survives restarts. The row of a task
that this process knows and that no longer declares a schedule is deleted (its jobs stay).
"""

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import new_id, utcnow
from app.db.base import table_of
from app.db.database import Database
from app.schedules.definition import Schedule
from app.schedules.models import ScheduleRecord
from app.schedules.repository import ScheduleRepository
from app.tasks.registry import Registry

logger = logging.getLogger(__name__)


def _values(task_name: str, schedule: Schedule) -> dict[str, Any]:
    return {
        "task_name": task_name,
        "params": schedule.params,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "interval_seconds": schedule.interval_seconds,
        "catchup": schedule.catchup,
        "overlap": schedule.overlap,
    }


async def sync_code_schedules(
    database: Database, registry: Registry, now: datetime | None = None
) -> None:
    """Make the schedules table match the `schedule=` options of the registered tasks."""
    now = now or utcnow()
    declared = {}
    for name in registry.list_all():
        schedule = registry.get_definition(name).options.schedule
        if schedule is not None:
            declared[name] = schedule
    async with database.transaction() as session:
        repo = ScheduleRepository(session)
        existing = {record.code_key: record for record in await repo.code_defined()}
        for name, schedule in declared.items():
            record = existing.get(name)
            if record is None:
                await _insert(session, name, schedule, now)
            else:
                _update(record, name, schedule, now)
        gone = [
            key for key in existing if key is not None and registry.has(key) and key not in declared
        ]
        if gone:
            await session.execute(delete(ScheduleRecord).where(ScheduleRecord.code_key.in_(gone)))
    if declared or gone:
        logger.info(
            "schedules defined in code synchronised",
            extra={"declared": len(declared), "removed": len(gone)},
        )


async def _insert(session: AsyncSession, name: str, schedule: Schedule, now: datetime) -> None:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    table = table_of(ScheduleRecord)
    await session.execute(
        insert(table)
        .values(
            id=new_id(),
            enabled=schedule.enabled,
            next_fire_at=schedule.timing.after(now),
            created_at=now,
            updated_at=now,
            code_key=name,
            **_values(name, schedule),
        )
        .on_conflict_do_nothing(index_elements=[table.c.code_key])
    )


def _update(record: ScheduleRecord, name: str, schedule: Schedule, now: datetime) -> None:
    wanted = _values(name, schedule)
    if all(getattr(record, key) == value for key, value in wanted.items()):
        return
    retimed = record.timing != schedule.timing
    for key, value in wanted.items():
        setattr(record, key, value)
    if retimed:
        record.next_fire_at = schedule.timing.after(now)
    record.updated_at = now
