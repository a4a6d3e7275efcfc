"""Schedules declared with `schedule=` on a task: upserted at start-up by every process."""

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.db.database import Database
from app.jobs.events import EventBus
from app.schedules.code import sync_code_schedules
from app.schedules.definition import Schedule
from app.schedules.manager import ScheduleManager
from app.schedules.models import ScheduleRecord
from app.schedules.runtime import start_schedules
from app.schedules.schemas import ScheduleUpdate
from app.tasks.registry import TaskRegistry
from tests.conftest import make_settings, sqlite_url
from tests.helpers import apoll_until

T0 = datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)


def noop(size: int = 1) -> int:
    return size


async def rows(database: Database) -> list[ScheduleRecord]:
    async with database.read_session() as session:
        return list(await session.scalars(select(ScheduleRecord).order_by(ScheduleRecord.id)))


@pytest.fixture
async def second_database(database_url: str) -> AsyncIterator[Database]:
    other = Database(database_url)
    try:
        yield other
    finally:
        await other.dispose()


def test_a_cron_string_is_a_schedule_and_bad_ones_fail_registration(
    registry: type[TaskRegistry],
) -> None:
    definition = registry.register_function("tidy", noop, schedule="*/5 * * * *")
    assert definition.options.schedule == Schedule(cron="*/5 * * * *")
    with pytest.raises(ValueError, match="invalid options"):
        registry.register_function("bad_cron", noop, schedule="*/5 * *")
    with pytest.raises(ValueError, match="invalid schedule params"):
        registry.register_function(
            "bad_params", noop, schedule=Schedule("* * * * *", params={"x": 1})
        )
    assert "schedule" not in registry.get_info("tidy").options.model_dump()


async def test_every_process_upserts_the_same_single_row(
    database: Database, second_database: Database, registry: type[TaskRegistry]
) -> None:
    registry.register_function(
        "tidy", noop, schedule=Schedule(interval_seconds=60, params={"size": 3}, catchup="all")
    )
    await asyncio.gather(
        sync_code_schedules(database, registry.default(), T0),
        sync_code_schedules(second_database, registry.default(), T0),
    )
    await sync_code_schedules(database, registry.default(), T0 + timedelta(hours=1))
    [row] = await rows(database)
    assert (row.code_key, row.task_name, row.params) == ("tidy", "tidy", {"size": 3})
    assert (row.interval_seconds, row.catchup, row.overlap) == (60, "all", "allow")
    # An unchanged definition keeps its fire times (a restart is not a change).
    assert row.next_fire_at == datetime(2026, 1, 1, 10, 1, tzinfo=UTC)


async def test_a_changed_definition_updates_the_row_and_a_pause_survives(
    database: Database, registry: type[TaskRegistry]
) -> None:
    registry.register_function("tidy", noop, schedule="0 * * * *")
    await sync_code_schedules(database, registry.default(), T0)
    [row] = await rows(database)
    await ScheduleManager(database, registry=registry.default()).update(
        row.id, ScheduleUpdate(enabled=False)
    )

    registry.clear()
    registry.register_function(
        "tidy", noop, schedule=Schedule(cron="0 6 * * *", timezone="Asia/Tokyo", overlap="skip")
    )
    await sync_code_schedules(database, registry.default(), T0)
    [changed] = await rows(database)
    assert changed.id == row.id
    assert (changed.cron, changed.timezone, changed.overlap) == ("0 6 * * *", "Asia/Tokyo", "skip")
    assert changed.next_fire_at == datetime(2026, 1, 1, 21, 0, tzinfo=UTC)  # 06:00 JST
    assert changed.enabled is False


async def test_a_schedule_removed_from_code_is_deleted_when_the_task_is_known(
    database: Database, registry: type[TaskRegistry]
) -> None:
    registry.register_function("tidy", noop, schedule="0 * * * *")
    registry.register_function("other", noop, schedule="0 * * * *")
    await sync_code_schedules(database, registry.default(), T0)

    registry.clear()
    registry.register_function("tidy", noop)  # no schedule any more; "other" is unknown here
    await sync_code_schedules(database, registry.default(), T0)
    assert [row.code_key for row in await rows(database)] == ["other"]


async def test_the_upsert_is_retried_until_the_database_can_be_reached(
    tmp_path: Path, migrated_sqlite_template: Path, registry: type[TaskRegistry]
) -> None:
    registry.register_function("tidy", noop, schedule="0 * * * *")
    path = tmp_path / "later" / "taskexec.db"
    settings = make_settings(sqlite_url(path), schedule_poll_interval=0.05)
    database = Database(settings.database_url)
    schedules = await start_schedules(
        settings, database, registry=registry.default(), bus=EventBus(), worker=None, metrics=None
    )
    try:
        path.parent.mkdir()
        shutil.copy(migrated_sqlite_template, path)
        await apoll_until(lambda: _has_rows(database), what="the code schedule's row")
    finally:
        await schedules.stop()
        await database.dispose()


async def _has_rows(database: Database) -> bool:
    return bool(await rows(database))
