"""Scale-out on PostgreSQL: many worker processes share one queue, each job runs once, the API
runs apart from the workers, and task concurrency limits hold across processes."""

import signal
from collections import Counter
from pathlib import Path

import pytest

from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs.models import Job, JobStatus
from app.jobs.store import JobStore
from tests.helpers import poll_until, wait_job_sync
from tests.postgres.conftest import Postgres, Processes
from tests.postgres.tasks import LIMIT

pytestmark = pytest.mark.postgres

JOBS = 5_000
WORKER_PROCESSES = 4


def new_jobs(task_name: str, params: dict[str, object], count: int) -> list[Job]:
    now = utcnow()
    return [
        Job(
            id=new_id(),
            task_name=task_name,
            status=JobStatus.PENDING,
            params=params,
            priority=0,
            run_at=now,
            created_at=now,
            attempts=0,
            max_attempts=1,
        )
        for _ in range(count)
    ]


def enqueue(pg: Postgres, jobs: list[Job]) -> None:
    """Insert jobs straight into the queue, in one transaction."""

    async def insert() -> None:
        database = Database(pg.url)
        try:
            await JobStore(database).queue(jobs)
        finally:
            await database.dispose()

    pg.run(insert())


def test_scale_out_runs_every_job_exactly_once(
    pg: Postgres, processes: Processes, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    jobs = new_jobs("pg_record_run", {"log": str(log)}, JOBS)
    enqueue(pg, jobs)
    assert pg.status_counts() == {"pending": JOBS}

    workers = processes.worker(
        processes=WORKER_PROCESSES, env={"TASKEXEC_MAX_CONCURRENCY": "32"}, wait=False
    )
    poll_until(lambda: pg.unfinished() == 0, within=180, interval=0.5, what="an empty queue")
    assert workers.terminate() == 0

    assert pg.status_counts() == {"completed": JOBS}
    assert pg.fetchval("SELECT count(*) FROM jobs WHERE attempts <> 1") == 0
    per_job = pg.artifacts_per_job()
    assert set(per_job) == {job.id for job in jobs}
    assert set(per_job.values()) == {1}
    orphans = pg.fetchval(
        "SELECT count(*) FROM jobs j LEFT JOIN artifacts a ON a.id = j.result_artifact_id "
        "WHERE a.id IS NULL OR a.job_id <> j.id"
    )
    assert orphans == 0

    lines = log.read_text().splitlines()
    assert len(lines) == JOBS
    runs = [line.split() for line in lines]
    assert all(len(run) == 2 for run in runs)
    ran = Counter(job_id for job_id, _ in runs)
    assert set(ran) == {job.id for job in jobs}
    assert set(ran.values()) == {1}
    pids = Counter(pid for _, pid in runs)
    assert len(pids) > 1, f"one process did all the work: {pids}"
    assert str(workers.pid) not in pids, "the supervising process ran jobs itself"


def test_api_and_workers_split_wakes_the_worker_by_notify(processes: Processes) -> None:
    # Without a notification the worker would look for work only every 20 s (a heartbeat:
    # a third of the lease); its poll interval is longer still.
    worker = processes.worker(env={"TASKEXEC_POLL_INTERVAL": "30", "TASKEXEC_LEASE_SECONDS": "60"})
    api = processes.api()
    with api.client() as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok"}
        info = client.get("/api/v1/info").json()
        assert info["worker"] is False
        assert info["database"] == "postgresql"

        for n in range(3):
            response = client.post("/api/v1/tasks/pg_quick/$execute", json={"params": {"n": n}})
            assert response.status_code == 202, response.text
            job_id = response.json()["job_id"]
            seen = wait_job_sync(client, job_id, within=10)
            assert seen["status"] == "completed", seen
            assert seen["attempts"] == 1
            attempts = seen["attempt_history"]
            assert isinstance(attempts, list)
            assert attempts[0]["worker_id"].split(":")[1] == str(worker.pid)
            artifact = client.get(f"/api/v1/artifacts/{seen['result']}").json()
            assert artifact["data"]["result"] == {"n": n}
    assert worker.terminate() == 0
    # Uvicorn re-raises the signal it stopped on once it has shut down.
    assert api.terminate() in {0, -signal.SIGTERM}


def test_task_limit_holds_across_worker_processes(
    pg: Postgres, processes: Processes, tmp_path: Path
) -> None:
    env = {"TASKEXEC_MAX_CONCURRENCY": "8"}
    first = processes.worker(env=env)
    second = processes.worker(env=env)
    log = tmp_path / "limited.log"
    # Both idle workers are woken by the same notification and race for the jobs.
    job_ids = pg.submit("pg_limited", [{"log": str(log), "hold": 0.3} for _ in range(12)])
    poll_until(lambda: pg.unfinished() == 0, within=60, interval=0.2, what="12 limited jobs")
    assert first.terminate() == 0
    assert second.terminate() == 0
    assert pg.status_counts() == {"completed": 12}

    events: list[tuple[int, int]] = []
    started: set[str] = set()
    for line in log.read_text().splitlines():
        kind, job_id, _pid, stamp = line.split()
        if kind == "start":
            started.add(job_id)
        # Ends sort before starts at the same instant: a slot handed straight on is no overlap.
        events.append((int(stamp), 1 if kind == "start" else -1))
    assert started == set(job_ids)
    running = peak = 0
    for _, delta in sorted(events):
        running += delta
        peak = max(peak, running)
    assert peak == LIMIT, f"peak of {peak} concurrent runs; the limit is {LIMIT}"
