"""Leases and hand-back across real server processes sharing one SQLite file.

A job whose worker vanished on another host cannot be recognised by its pid: it is recovered only
once its lease has expired. A job still running when the server is asked to stop goes back to
the queue without using up an attempt.
"""

import contextlib
import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    ServerFactory,
    ServerProcess,
    count_jobs,
    execute,
    get_artifact,
    get_job,
    list_all,
    wait_job,
)
from tests.helpers import Sse, follow_sync

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 1.5
# A worker id naming another machine: the recovering server cannot check whether it still runs.
OTHER_HOST_WORKER = "otherhost:1:abcdef"


def _query(db_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the server's database file (committed) and return its rows."""
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        with conn:
            rows = conn.execute(sql, params).fetchall()
        return rows


def _stored_time(text: str) -> datetime:
    """A timestamp as the service stores it in SQLite: naive UTC text."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _api_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_lost_workers_jobs_are_recovered_once_their_lease_expires(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(max_concurrency=2, lease_seconds=LEASE_SECONDS)
    release = tmp_path / "release"
    params = {"release": str(release), "max_wait": 60.0}
    with server.client() as client:
        retried = execute(client, "block_retry", params)
        lost = execute(client, "block_async", params)
        _wait_running(client, retried, lost)

    assert server.kill9() == -signal.SIGKILL
    _query(
        server.db_path,
        "UPDATE jobs SET worker_id = ? WHERE status = 'running'",
        OTHER_HOST_WORKER,
    )
    rows = _query(server.db_path, "SELECT id, worker_id, lease_expires_at FROM jobs")
    assert {row[1] for row in rows} == {OTHER_HOST_WORKER}
    lease_expired_at = {row[0]: _stored_time(row[2]) for row in rows}

    server.restart()
    with server.client() as client:
        # Both jobs go back to the queue without using an attempt, once their lease ran out
        # (nothing else could tell that their worker was gone), and run again here.
        for job_id in (lost, retried):
            # Still `running` under the dead worker until its lease runs out: wait for the
            # attempt a worker of this process started after the re-queue.
            follow_sync(client, job_id, _started_again, within=15)
            rerun = get_job(client, job_id)
            assert rerun["status"] == "running"
            assert rerun["attempts"] == 1
            assert rerun["error"]["type"] == "WorkerLost"
            [requeued] = [
                e
                for e in list_all(client, f"/api/v1/jobs/{job_id}/events")
                if e["type"] == "requeued"
            ]
            assert requeued["data"]["worker_losses"] == 1
            assert _api_time(requeued["created_at"]) >= lease_expired_at[job_id]
        release.touch()
        for job_id in (lost, retried):
            done = wait_job(client, job_id, timeout=20)
            assert done["status"] == "completed", done
            assert done["error"] is None
            (attempt,) = done["attempt_history"]
            assert (attempt["attempt"], attempt["status"]) == (1, "completed")
            assert attempt["worker_id"] != OTHER_HOST_WORKER
            assert get_artifact(client, done["result"])["data"]["result"] == {"peak": 1}
        assert count_jobs(client) == 2


def _stop(server: ServerProcess) -> None:
    assert server.terminate() in {0, -signal.SIGTERM}


def test_sigterm_hands_running_jobs_back_without_using_an_attempt(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(env={"TASKEXEC_SHUTDOWN_GRACE_SECONDS": "0.5"})
    release = tmp_path / "release"
    params = {"release": str(release), "max_wait": 60.0}
    with server.client() as client:
        on_loop = execute(client, "block_async", params)
        in_thread = execute(client, "block_sync", params)
        _wait_running(client, on_loop, in_thread)

    _stop(server)
    rows = _query(
        server.db_path,
        "SELECT id, status, attempts, worker_id, lease_expires_at, json_extract(error, '$.type') "
        "FROM jobs",
    )
    assert sorted(rows) == sorted(
        [(on_loop, "pending", 0, None, None, None), (in_thread, "pending", 0, None, None, None)]
    )
    assert _query(server.db_path, "SELECT count(*) FROM job_attempts") == [(0,)]

    release.touch()
    server.restart()
    with server.client() as client:
        for job_id in (on_loop, in_thread):
            job = wait_job(client, job_id, timeout=20)
            assert job["status"] == "completed", job
            assert job["attempts"] == 1
            assert [a["status"] for a in job["attempt_history"]] == ["completed"]
            assert get_job(client, job_id)["error"] is None
        assert count_jobs(client) == 2


def _started_again(events: list[Sse]) -> bool:
    return sum(1 for event in events if event.event == "started") == 2


def _wait_running(client: httpx.Client, *job_ids: str) -> None:
    for job_id in job_ids:
        wait_job(client, job_id, statuses=frozenset({"running"}), timeout=15)
    assert count_jobs(client, "running") == len(job_ids)
