"""`/metrics` counts each schedule's fires and missed fires."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from app.core.clock import utcnow
from app.db.database import Database
from app.jobs.models import Job
from app.schedules.models import ScheduleRecord
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry
from tests.conftest import make_settings, running_client
from tests.core.test_metrics import scrape, value
from tests.helpers import apoll_until

HOUR = timedelta(hours=1)


async def test_fires_and_missed_fires_per_schedule(
    database_url: str, database: Database, registry: type[TaskRegistry]
) -> None:
    @registry.register("hourly")
    def hourly() -> str:
        return "done"

    app = (
        ServiceBuilder(
            info=ServiceInfo(display_name="monitored"), settings=make_settings(database_url)
        )
        .with_tasks()
        .with_monitoring()
        .build()
    )
    async with running_client(app) as client:
        created = (
            await client.post(
                "/api/v1/schedules", json={"task_name": "hourly", "interval_seconds": 3600}
            )
        ).json()
        assert (await client.post(f"/api/v1/schedules/{created['id']}/$trigger")).status_code == 202

        # As if no process had run for the last five hours and a half.
        this_hour = datetime.fromtimestamp(utcnow().timestamp() // 3600 * 3600, UTC)
        async with database.transaction() as session:
            await session.execute(
                update(ScheduleRecord)
                .where(ScheduleRecord.id == created["id"])
                .values(next_fire_at=this_hour - 5 * HOUR)
            )
        await client.patch(f"/api/v1/schedules/{created['id']}", json={"catchup": "latest"})

        async def caught_up() -> bool:
            async with database.read_session() as session:
                count = await session.scalar(
                    select(func.count()).select_from(Job).where(Job.schedule_id == created["id"])
                )
            return count == 2

        await apoll_until(caught_up, what="the catch-up fire")
        samples = await scrape(client)
    labels = {"schedule": created["id"], "task": "hourly"}
    assert value(samples, "taskexec_schedule_fires_total", **labels) == 2
    assert value(samples, "taskexec_schedule_missed_fires_total", reason="catchup", **labels) == 5
    assert value(samples, "taskexec_jobs_submitted_total", task="hourly") == 2
