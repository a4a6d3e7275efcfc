"""Faults from task code in a real `taskexec worker` process on PostgreSQL: the job ends
`failed` with the exception's type, and the worker process keeps running jobs."""

import pytest

from tests.faulty import HOWS, STOPPING_TASKS, UNPRINTABLE_TASKS
from tests.helpers import poll_until
from tests.postgres.conftest import Postgres, Processes

pytestmark = pytest.mark.postgres


def test_worker_process_survives_sys_exit_and_base_exceptions(
    pg: Postgres, processes: Processes
) -> None:
    worker = processes.worker(env={"TASKEXEC_MAX_CONCURRENCY": "4"})
    expected: dict[str, tuple[str, str]] = {}
    for task in STOPPING_TASKS:
        for how in HOWS:
            [job_id] = pg.submit(f"pg_{task}", [{"how": how}])
            expected[job_id] = (task, how)
    for task in UNPRINTABLE_TASKS:
        [job_id] = pg.submit(f"pg_{task}", [{}])
        expected[job_id] = (task, "unprintable")

    poll_until(lambda: pg.unfinished() == 0, within=60, interval=0.2, what="every job to end")
    rows = pg.fetch("SELECT id, status, attempts, error FROM jobs")
    assert len(rows) == len(expected)
    for job_id, status, attempts, error in rows:
        task, how = expected[job_id]
        wanted = "Unprintable" if how == "unprintable" else HOWS[how]
        assert (status, attempts) == ("failed", 1), (task, how, status, error)
        assert wanted in error, (task, how, error)
    assert worker.running

    [after] = pg.submit("pg_quick", [{"n": 7}])
    poll_until(lambda: pg.unfinished() == 0, within=30, interval=0.1, what="the next job")
    assert pg.fetchval("SELECT status FROM jobs WHERE id = $1", after) == "completed"
    assert worker.running
    assert worker.terminate() == 0
