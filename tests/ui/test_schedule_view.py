"""The schedules page's reads: schedules newest first, each with its latest fire's job."""

from datetime import datetime, timedelta

from app.db.database import Database
from app.schedules.models import ScheduleRecord
from app.ui.schedule_view import schedule_page
from tests.ui.helpers import insert_jobs, job_row
from tests.ui.test_queries import NOW


def schedule(n: int, task: str, *, enabled: bool = True) -> ScheduleRecord:
    made = NOW - timedelta(days=1) + timedelta(minutes=n)
    return ScheduleRecord(
        id=job_row(n, made)["id"],
        task_name=task,
        params={},
        cron="*/5 * * * *" if n % 2 else None,
        timezone="Europe/Paris" if n % 2 else "UTC",
        interval_seconds=None if n % 2 else 60,
        enabled=enabled,
        catchup="latest",
        overlap="allow",
        next_fire_at=NOW + timedelta(minutes=n),
        last_fired_at=None,
        created_at=made,
        updated_at=made,
        code_key=None,
    )


def fire(n: int, schedule_id: str, scheduled_for: datetime, made: datetime) -> dict[str, object]:
    return job_row(n, made, schedule_id=schedule_id, scheduled_for=scheduled_for)


async def test_schedules_with_their_latest_fire(database: Database) -> None:
    records = [schedule(1, "a"), schedule(2, "b", enabled=False), schedule(3, "a")]
    async with database.transaction() as session:
        session.add_all(records)
    first, second, third = (r.id for r in records)
    at = NOW - timedelta(hours=1)
    fires = [
        fire(10, first, at, at),
        fire(11, first, at + timedelta(minutes=5), at + timedelta(minutes=5)),
        # A catch-up fire made last, for an earlier time: the job the schedule made last.
        fire(12, first, at - timedelta(minutes=5), at + timedelta(minutes=6)),
        fire(13, third, at, at),
    ]
    await insert_jobs(database, fires)

    async with database.read_session() as session:
        page = await schedule_page(session, task_name=None, limit=50, offset=0)
        only_a = await schedule_page(session, task_name="a", limit=1, offset=1)
        none = await schedule_page(session, task_name="nope", limit=50, offset=0)

    assert [s.id for s in page.schedules] == [third, second, first]
    assert page.total == 3
    assert page.older is None
    assert page.newer is None
    assert {k: v.job_id for k, v in page.last_fires.items()} == {
        first: fires[2]["id"],
        third: fires[3]["id"],
    }
    assert page.last_fires[first].status == "completed"
    assert page.last_fires[first].scheduled_for == at - timedelta(minutes=5)
    assert [s.id for s in only_a.schedules] == [first]
    assert (only_a.total, only_a.newer, only_a.older) == (2, 0, None)
    assert none.schedules == []
    assert none.last_fires == {}
