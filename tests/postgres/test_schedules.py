"""Exactly once on PostgreSQL: four worker processes, each running the firing loop, share an
interval schedule of one second."""

from datetime import timedelta

import pytest

from tests.helpers import poll_until
from tests.postgres.conftest import Postgres, Processes

pytestmark = pytest.mark.postgres

FIRES = 16  # fire times spanning 15 seconds
SCHEDULE_ENV = {"TASKEXEC_TASK_MODULES": "tests.schedules.tasks"}


def test_four_workers_fire_each_second_exactly_once(processes: Processes, pg: Postgres) -> None:
    workers = processes.worker(processes=4, env=SCHEDULE_ENV)

    def completed() -> bool:
        count: int = pg.fetchval(
            "SELECT count(*) FROM jobs WHERE schedule_id IS NOT NULL AND status = 'completed'"
        )
        return count >= FIRES

    poll_until(completed, within=FIRES + 25, interval=0.2, what=f"{FIRES} completed fires")
    assert workers.terminate() == 0

    # One schedule, upserted by four processes at once.
    assert pg.fetchval("SELECT count(*) FROM schedules") == 1
    jobs = pg.fetch(
        "SELECT id, scheduled_for, status, attempts FROM jobs"
        " WHERE schedule_id IS NOT NULL ORDER BY scheduled_for"
    )
    times = [row["scheduled_for"] for row in jobs]
    # No duplicate and no gap: one job per second from the first fire to the last.
    assert len(set(times)) == len(times)
    assert times == [times[0] + timedelta(seconds=i) for i in range(len(times))]
    assert len(times) >= FIRES
    # Every completed fire ran once and saw its own fire time.
    results = {
        row["job_id"]: row["result"]
        for row in pg.fetch("SELECT job_id, data->>'result' AS result FROM artifacts")
    }
    finished = [row for row in jobs if row["status"] == "completed"]
    assert len(finished) >= FIRES
    for row in finished:
        assert row["attempts"] == 1
        assert results[row["id"]] == row["scheduled_for"].isoformat(timespec="microseconds")
    sources = pg.fetch(
        "SELECT data->>'source' AS source, count(*) AS n FROM job_events"
        " WHERE type = 'created' GROUP BY 1"
    )
    assert [(row["source"], row["n"]) for row in sources] == [("schedule", len(jobs))]
