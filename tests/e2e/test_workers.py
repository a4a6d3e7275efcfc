"""A worker killed on another host: its heartbeat row, not its lease, tells that it died.

The server runs with a 60 s lease and a 6 s worker timeout (so a heartbeat every 2 s). After
kill -9 the job's lease still has about a minute to run; the restarted server finds the dead
worker's row silent for the timeout and re-queues the job at once.
"""

import signal
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    ServerFactory,
    execute,
    get_job,
    list_all,
    wait_job,
)
from tests.e2e.test_leases import _api_time, _query, _started_again, _stored_time, _wait_running
from tests.helpers import follow_sync

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 60.0
WORKER_TIMEOUT_SECONDS = 6.0
OTHER_HOST_WORKER = "otherhost:1:1-abcdef"


def test_a_dead_workers_job_is_requeued_long_before_its_lease_expires(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(
        max_concurrency=2,
        lease_seconds=LEASE_SECONDS,
        env={"TASKEXEC_WORKER_TIMEOUT_SECONDS": str(WORKER_TIMEOUT_SECONDS)},
    )
    release = tmp_path / "release"
    with server.client() as client:
        job_id = execute(client, "block_async", {"release": str(release), "max_wait": 120.0})
        _wait_running(client, job_id)

    assert server.kill9() == -signal.SIGKILL
    # Make the dead worker look like one of another machine: its pid cannot be checked.
    _query(server.db_path, "UPDATE jobs SET worker_id = ? WHERE id = ?", OTHER_HOST_WORKER, job_id)
    _query(server.db_path, "UPDATE workers SET id = ? WHERE stopped_at IS NULL", OTHER_HOST_WORKER)
    [(lease_text,)] = _query(server.db_path, "SELECT lease_expires_at FROM jobs")
    lease_expires_at = _stored_time(lease_text)

    server.restart()
    with server.client() as client:
        follow_sync(client, job_id, _started_again, within=LEASE_SECONDS)
        [requeued] = [
            e for e in list_all(client, f"/api/v1/jobs/{job_id}/events") if e["type"] == "requeued"
        ]
        assert requeued["data"]["worker_losses"] == 1
        # Re-queued by the worker timeout, most of the lease before it would have run out.
        assert _api_time(requeued["created_at"]) < lease_expires_at - timedelta(seconds=30)
        rerun = get_job(client, job_id)
        assert (rerun["status"], rerun["attempts"]) == ("running", 1)

        workers = client.get("/api/v1/workers", params={"alive": "false"})
        assert workers.status_code == 200, workers.text
        [dead] = workers.json()["items"]
        assert (dead["id"], dead["stop_reason"], dead["alive"]) == (
            OTHER_HOST_WORKER,
            "expired",
            False,
        )
        release.touch()
        done = wait_job(client, job_id, timeout=20)
        assert done["status"] == "completed", done
        (attempt,) = done["attempt_history"]
        assert attempt["worker_id"] != OTHER_HOST_WORKER
