"""Two `taskexec worker` processes on PostgreSQL: one dies as if on another machine, and the
other recovers its jobs from the workers table, long before their leases run out."""

import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers import poll_until
from tests.postgres.conftest import Postgres, Processes
from tests.postgres.test_recovery import running_by_pid

pytestmark = pytest.mark.postgres

LEASE_SECONDS = 60
WORKER_TIMEOUT_SECONDS = 4
OTHER_HOST_WORKER = "otherhost:1:1-abcdef"


def test_the_other_worker_recovers_a_dead_workers_jobs_by_its_heartbeat_row(
    pg: Postgres, processes: Processes, tmp_path: Path
) -> None:
    env = {
        "TASKEXEC_MAX_CONCURRENCY": "2",
        "TASKEXEC_LEASE_SECONDS": str(LEASE_SECONDS),
        "TASKEXEC_WORKER_TIMEOUT_SECONDS": str(WORKER_TIMEOUT_SECONDS),
    }
    victim = processes.worker(env=env)
    survivor = processes.worker(env=env)
    release = tmp_path / "release"
    params = {"release": str(release), "log": str(tmp_path / "runs.log"), "max_wait": 120.0}
    pg.submit("pg_block", [params] * 4, retries=0)

    def both_busy() -> bool:
        held = running_by_pid(pg)
        return {pid: len(ids) for pid, ids in held.items()} == {
            str(victim.pid): 2,
            str(survivor.pid): 2,
        }

    poll_until(both_busy, within=20, interval=0.1, what="both workers to run 2 jobs each")
    assert pg.fetchval("SELECT count(*) FROM workers WHERE stopped_at IS NULL") == 2
    lost = set(running_by_pid(pg)[str(victim.pid)])
    # Frozen first, so the survivor cannot tell by its pid that it is gone; then renamed to
    # a worker of another machine and killed: only its silent row tells that it died.
    os.kill(victim.pid, signal.SIGSTOP)
    pattern = f"%:{victim.pid}:%"
    pg.fetch("UPDATE jobs SET worker_id = $1 WHERE worker_id LIKE $2", OTHER_HOST_WORKER, pattern)
    pg.fetch("UPDATE workers SET id = $1 WHERE id LIKE $2", OTHER_HOST_WORKER, pattern)
    assert victim.kill9() == -signal.SIGKILL
    leases = dict(pg.fetch("SELECT id, lease_expires_at FROM jobs WHERE id = ANY($1)", list(lost)))

    def requeued() -> bool:
        count = pg.fetchval(
            "SELECT count(*) FROM job_events WHERE type = 'requeued' AND job_id = ANY($1)",
            list(lost),
        )
        return bool(count == len(lost))

    poll_until(requeued, within=LEASE_SECONDS, interval=0.2, what="the lost jobs' re-queue")
    for job_id, created_at in pg.fetch(
        "SELECT job_id, created_at FROM job_events WHERE type = 'requeued'"
    ):
        assert job_id in lost
        assert created_at < leases[job_id] - timedelta(seconds=LEASE_SECONDS / 2)
    [(reason, running)] = pg.fetch(
        "SELECT stop_reason, running FROM workers WHERE id = $1", OTHER_HOST_WORKER
    )
    assert (reason, running) == ("expired", 0)

    release.touch()
    poll_until(lambda: pg.unfinished() == 0, within=60, interval=0.2, what="every job to end")
    assert pg.status_counts() == {"completed": 4}
    assert survivor.terminate() == 0
    rows = pg.fetch("SELECT stop_reason FROM workers WHERE id <> $1", OTHER_HOST_WORKER)
    assert [tuple(row) for row in rows] == [("stopped",)]
