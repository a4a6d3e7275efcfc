"""Recovery on PostgreSQL: a worker process killed mid-run, and the database server restarted
under load, lose no accepted job."""

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import poll_until, wait_job_sync
from tests.postgres.conftest import Postgres, PostgresServer, Processes

pytestmark = pytest.mark.postgres

BLOCKED_JOBS = 8
QUICK_JOBS = 300
RESTART_AFTER = 100


def running_by_pid(pg: Postgres) -> dict[str, list[str]]:
    """Running jobs per worker process id (the worker id is host:pid:suffix)."""
    rows = pg.fetch("SELECT id, worker_id FROM jobs WHERE status = 'running' ORDER BY id")
    held: dict[str, list[str]] = {}
    for job_id, worker_id in rows:
        held.setdefault(worker_id.split(":")[1], []).append(job_id)
    return held


def test_killed_worker_jobs_finish_on_the_other_worker(
    pg: Postgres, processes: Processes, tmp_path: Path
) -> None:
    env = {"TASKEXEC_MAX_CONCURRENCY": "2", "TASKEXEC_LEASE_SECONDS": "3"}
    victim = processes.worker(env=env)
    survivor = processes.worker(env=env)
    release = tmp_path / "release"
    log = tmp_path / "runs.log"
    params = {"release": str(release), "log": str(log), "max_wait": 60.0}
    # No retries: a lost worker does not use the job's one attempt.
    job_ids = pg.submit("pg_block", [params] * BLOCKED_JOBS, retries=0)

    def both_busy() -> bool:
        held = running_by_pid(pg)
        return {pid: len(ids) for pid, ids in held.items()} == {
            str(victim.pid): 2,
            str(survivor.pid): 2,
        }

    poll_until(both_busy, within=20, interval=0.1, what="both workers to run 2 jobs each")
    lost = set(running_by_pid(pg)[str(victim.pid)])
    assert victim.kill9() == -signal.SIGKILL
    release.touch()

    poll_until(lambda: pg.unfinished() == 0, within=60, interval=0.2, what="every job to end")
    assert survivor.terminate() == 0
    assert pg.status_counts() == {"completed": BLOCKED_JOBS}
    assert pg.fetchval("SELECT count(*) FROM jobs") == BLOCKED_JOBS
    per_job = pg.artifacts_per_job()
    assert set(per_job) == set(job_ids)
    assert set(per_job.values()) == {1}

    for job_id in job_ids:
        (attempts, losses) = pg.fetch(
            "SELECT attempts, worker_losses FROM jobs WHERE id = $1", job_id
        )[0]
        history = pg.fetch(
            "SELECT attempt, status, worker_id FROM job_attempts WHERE job_id = $1", job_id
        )
        # Re-run as attempt 1 again: the lost run is a worker loss, not a failed attempt.
        assert attempts == 1, job_id
        assert [(row[0], row[1]) for row in history] == [(1, "completed")]
        if job_id in lost:
            assert losses == 1, job_id
            assert history[0][2].split(":")[1] == str(survivor.pid)
        else:
            assert losses == 0, job_id

    assert pg.fetchval("SELECT count(*) FROM artifacts WHERE data->>'error' IS NOT NULL") == 0
    runs = [line.split() for line in log.read_text().splitlines()]
    # Every job started once, and the lost ones once more.
    assert sorted(job_id for job_id, _pid, _attempt in runs) == sorted([*job_ids, *lost])


class Submitter(threading.Thread):
    """Submits `total` quick jobs through the API, retrying a submission the API could not
    take (5xx or no connection); only 202-accepted jobs count."""

    def __init__(self, base_url: str, total: int, deadline: float) -> None:
        super().__init__(name="submitter", daemon=True)
        self.base_url = base_url
        self.total = total
        self.deadline = deadline
        self.accepted: list[str] = []
        self.refused = 0
        self.failure: str | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base_url, timeout=10.0) as client:
                for n in range(self.total):
                    self.accepted.append(self.submit(client, n))
        except Exception as exc:
            self.failure = repr(exc)

    def submit(self, client: httpx.Client, n: int) -> str:
        body: dict[str, Any] = {"params": {"n": n, "pause": 0.01}}
        while time.monotonic() < self.deadline:
            try:
                response = client.post("/api/v1/tasks/pg_quick/$execute", json=body)
            except httpx.TransportError:
                self.refused += 1
                time.sleep(0.1)
                continue
            if response.status_code == 202:
                job_id: str = response.json()["job_id"]
                return job_id
            if response.status_code < 500:
                raise AssertionError(f"submission {n}: {response.status_code} {response.text}")
            self.refused += 1
            time.sleep(0.1)
        raise TimeoutError(f"submission {n} was not accepted in time")


def test_postgres_restart_loses_no_accepted_job(
    pg: Postgres, processes: Processes, postgres_server: PostgresServer
) -> None:
    # The worker looks for jobs by itself only every 30 s (a third of the lease): once idle
    # after the restart, it hears of a new job in time only if its LISTEN connection is back.
    processes.worker(
        env={
            "TASKEXEC_MAX_CONCURRENCY": "8",
            "TASKEXEC_POLL_INTERVAL": "60",
            "TASKEXEC_LEASE_SECONDS": "90",
        }
    )
    api = processes.api()
    submitter = Submitter(api.base_url, QUICK_JOBS, deadline=time.monotonic() + 90)
    submitter.start()
    try:
        poll_until(
            lambda: len(submitter.accepted) >= RESTART_AFTER or not submitter.is_alive(),
            within=30,
            what=f"{RESTART_AFTER} accepted jobs",
        )
        assert submitter.is_alive(), submitter.failure
        postgres_server.restart()
    finally:
        submitter.join(timeout=100)
    assert not submitter.is_alive(), "the submitter did not finish"
    assert submitter.failure is None, submitter.failure
    accepted = set(submitter.accepted)
    assert len(accepted) == QUICK_JOBS
    # The server went away in the middle of the submissions: some had to be retried.
    assert submitter.refused > 0

    poll_until(lambda: pg.unfinished() == 0, within=15, interval=0.2, what="every job to end")
    rows = pg.fetch("SELECT id, status FROM jobs")
    # A submission whose 202 was lost may have queued a job too: it must end as well.
    assert accepted <= {job_id for job_id, _ in rows}
    assert {status for _, status in rows} == {"completed"}
    per_job = pg.artifacts_per_job()
    assert set(per_job) == {job_id for job_id, _ in rows}
    assert set(per_job.values()) == {1}

    with api.client() as client:

        def ready() -> bool:
            try:
                return client.get("/health/ready").status_code == 200
            except httpx.TransportError:
                return False

        poll_until(ready, within=30, interval=0.2, what="the API to be ready again")
        assert client.get("/health/ready").json()["checks"] == {"database": "ok"}

        # The queue is empty and the worker idle: only a notification wakes it now.
        response = client.post("/api/v1/tasks/pg_quick/$execute", json={"params": {"n": -1}})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]

        finished = wait_job_sync(client, job_id, within=10)
        assert finished["status"] == "completed", finished
