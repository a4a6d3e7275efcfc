"""Flows across processes on PostgreSQL: children run in any worker process, and the NOTIFY of
the transaction that finishes the last one wakes the parent in its own process."""

from collections import Counter

import pytest

from tests.helpers import wait_job_sync
from tests.postgres.conftest import Postgres, Processes

pytestmark = pytest.mark.postgres

CHILDREN = 1_000
WORKER_PROCESSES = 4
ENV = {
    "TASKEXEC_TASK_MODULES": "tests.postgres.tasks,tests.postgres.flow_tasks",
    "TASKEXEC_MAX_CONCURRENCY": "16",
}


def test_a_map_of_a_thousand_children_completes_on_four_worker_processes(
    pg: Postgres, processes: Processes
) -> None:
    processes.worker(processes=WORKER_PROCESSES, env=ENV)
    api = processes.api(env=ENV)
    with api.client(timeout=70) as client:
        response = client.post(
            "/api/v1/tasks/pg_fan_out/$execute", json={"params": {"count": CHILDREN}}
        )
        assert response.status_code == 202, response.text
        parent = response.json()["job_id"]
        job = wait_job_sync(client, parent, within=120)
        assert job["status"] == "completed", job
        result = client.get(f"/api/v1/artifacts/{job['result']}").json()["data"]["result"]
    assert result == {"children": CHILDREN, "sum": sum(range(CHILDREN))}
    statuses = pg.fetch("SELECT status, count(*) FROM jobs WHERE parent_id = $1 GROUP BY 1", parent)
    assert {row[0]: row[1] for row in statuses} == {"completed": CHILDREN}
    # Each child ran once, with one artifact; the work was shared by the processes.
    per_job = pg.artifacts_per_job()
    assert len(per_job) == CHILDREN + 1
    assert set(per_job.values()) == {1}
    # Each child's result nests under the parent's, whichever process ended it.
    nested = pg.fetch(
        "SELECT a.parent_id, a.level, count(*) FROM jobs j JOIN artifacts a "
        "ON a.id = j.result_artifact_id WHERE j.parent_id = $1 GROUP BY 1, 2",
        parent,
    )
    assert [tuple(row) for row in nested] == [(job["result"], 1, CHILDREN)]
    workers = pg.fetch(
        "SELECT split_part(job_attempts.worker_id, ':', 2), count(*) FROM job_attempts "
        "JOIN jobs ON jobs.id = job_attempts.job_id WHERE jobs.parent_id = $1 GROUP BY 1",
        parent,
    )
    assert len(workers) > 1
    assert sum(row[1] for row in workers) == CHILDREN
    assert pg.fetchval("SELECT count(*) FROM job_waits") == 0
    # The parent waited once and was woken once, by the transaction of its last child.
    events = Counter(
        row[0] for row in pg.fetch("SELECT type FROM job_events WHERE job_id = $1", parent)
    )
    assert (events["waiting"], events["woken"], events["resumed"]) == (1, 1, 1)
    assert events["child_finished"] == CHILDREN
