"""Exactly once on SQLite: two `serve` processes on one database file share an interval
schedule of one second; both run the firing loop."""

import signal
import sqlite3
from datetime import datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import ServerFactory, ServerProcess, count_jobs
from tests.helpers import poll_until

pytestmark = pytest.mark.e2e

FIRES = 16  # fire times spanning 15 seconds
SCHEDULE_MODULE = "tests.schedules.tasks"


def fires_counted(server: ServerProcess) -> float:
    with server.client() as client:
        text = client.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "taskexec_schedule_fires_total"
    )


def test_two_serve_processes_fire_each_second_exactly_once(server_factory: ServerFactory) -> None:
    first = server_factory(env={"TASKEXEC_TASK_MODULES": SCHEDULE_MODULE})
    second = server_factory(
        env={
            "TASKEXEC_TASK_MODULES": SCHEDULE_MODULE,
            "TASKEXEC_DATABASE_URL": f"sqlite+aiosqlite:///{first.db_path}",
        }
    )
    with first.client() as client:
        poll_until(
            lambda: count_jobs(client, status="completed", task="tick") >= FIRES,
            within=FIRES + 25,
            interval=0.2,
            what=f"{FIRES} completed fires",
        )
    # Each fire is counted by the one process that queued it.
    counted = fires_counted(first) + fires_counted(second)
    assert first.terminate() in {0, -signal.SIGTERM}
    assert second.terminate() in {0, -signal.SIGTERM}

    with sqlite3.connect(first.db_path) as db:
        assert db.execute("SELECT count(*) FROM schedules").fetchone() == (1,)
        jobs = db.execute(
            "SELECT j.id, j.scheduled_for, j.status, j.attempts, json_extract(a.data, '$.result')"
            " FROM jobs j LEFT JOIN artifacts a ON a.job_id = j.id"
            " WHERE j.schedule_id IS NOT NULL ORDER BY j.scheduled_for"
        ).fetchall()
    times = [datetime.fromisoformat(row[1]) for row in jobs]
    assert len(set(times)) == len(times)
    assert times == [times[0] + timedelta(seconds=i) for i in range(len(times))]
    assert len(times) >= FIRES
    assert counted <= len(times)  # fires queued after the scrape are not in it
    assert counted >= FIRES
    finished = [row for row in jobs if row[2] == "completed"]
    assert len(finished) >= FIRES
    for _, scheduled_for, _, attempts, result in finished:
        assert attempts == 1
        assert datetime.fromisoformat(result).replace(tzinfo=None) == datetime.fromisoformat(
            scheduled_for
        )
