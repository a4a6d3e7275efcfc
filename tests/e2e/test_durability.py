"""Durability: a killed or stopped server loses no accepted job."""

import signal
from datetime import UTC, datetime
from pathlib import Path

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
from tests.helpers import poll_until, wait_event_sync

pytestmark = pytest.mark.e2e

# Far longer than the test: jobs of a killed server must be recovered because its process is
# gone, not because their lease ran out.
LONG_LEASE = 600.0
PENDING = 4
RUNNING = frozenset({"running"})


def test_kill9_then_restart_ends_every_accepted_job(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(max_concurrency=2, lease_seconds=LONG_LEASE)
    release = tmp_path / "release"
    params = {"release": str(release), "max_wait": 60.0}
    with server.client() as client:
        retried = execute(client, "block_retry", params)
        lost = execute(client, "block_async", params)
        for job_id in (retried, lost):
            wait_job(client, job_id, statuses=RUNNING, timeout=15)
        assert count_jobs(client, "running") == 2
        pending = [execute(client, "block_async", params) for _ in range(PENDING)]
        assert count_jobs(client, "pending") == PENDING
        accepted = count_jobs(client)
    assert accepted == PENDING + 2

    assert server.kill9() == -signal.SIGKILL
    server.restart()

    with server.client() as client:
        # Re-queued at start-up from the dead pid, long before the lease would expire, and
        # without using an attempt: the job without retries runs again.
        for job_id in (lost, retried):
            _wait_requeued(client, job_id)
            requeued = get_job(client, job_id)
            assert requeued["status"] in {"pending", "running"}
            assert requeued["error"]["type"] == "WorkerLost"

        release.touch()
        for job_id in [lost, retried, *pending]:
            job = wait_job(client, job_id, timeout=30)
            assert job["status"] == "completed", job
            assert job["attempts"] == 1
            assert job["error"] is None
            assert [a["status"] for a in job["attempt_history"]] == ["completed"]
            artifact = get_artifact(client, job["result"])
            assert artifact["job_id"] == job_id
            assert artifact["data"]["params"] == params
            assert artifact["data"]["error"] is None

        assert count_jobs(client) == accepted
        assert count_jobs(client, "completed") == accepted
        artifacts = list_all(client, "/api/v1/artifacts")
    assert sorted(a["job_id"] for a in artifacts) == sorted([lost, retried, *pending])


def _losses(client: httpx.Client, job_id: str) -> list[int]:
    """The worker-loss counts recorded by the job's `requeued` events, in order."""
    events = list_all(client, f"/api/v1/jobs/{job_id}/events")
    return [e["data"]["worker_losses"] for e in events if e["type"] == "requeued"]


def _wait_requeued(client: httpx.Client, job_id: str) -> None:
    wait_event_sync(client, job_id, "requeued", within=10)
    assert _losses(client, job_id) == [1]


def test_a_job_whose_worker_keeps_dying_fails_past_max_worker_losses(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(
        max_concurrency=1,
        lease_seconds=LONG_LEASE,
        env={"TASKEXEC_MAX_WORKER_LOSSES": "1"},
    )
    params = {"release": str(tmp_path / "never"), "max_wait": 60.0}
    with server.client() as client:
        job_id = execute(client, "block_async", params)
        wait_job(client, job_id, statuses=RUNNING, timeout=15)

    # First loss: re-queued (1 of 1 allowed), and it runs again.
    assert server.kill9() == -signal.SIGKILL
    server.restart()
    with server.client() as client:
        again = wait_job(client, job_id, statuses=RUNNING, timeout=10)
        assert (again["attempts"], again["error"]["type"]) == (1, "WorkerLost")

    # Second loss: past max_worker_losses, the job fails instead of looping.
    assert server.kill9() == -signal.SIGKILL
    server.restart()
    with server.client() as client:
        failed = wait_job(client, job_id, statuses=frozenset({"failed"}), timeout=10)
        assert failed["error"]["type"] == "WorkerLost"
        assert "lost 2 times" in failed["error"]["message"]
        assert failed["attempts"] == 1
        assert _losses(client, job_id) == [1]
        data = get_artifact(client, failed["result"])["data"]
        assert (data["result"], data["error"]["type"]) == (None, "WorkerLost")
        assert count_jobs(client) == 1


def _wait_for_log(server: ServerProcess, text: str, timeout: float = 15) -> None:
    poll_until(lambda: text in server.log_tail(200), within=timeout, what=repr(text))


def _stop_and_restart(server: ServerProcess, release: Path, *, release_first: bool) -> datetime:
    """SIGTERM the server, wait for it to exit, restart it; return when it had exited."""
    server.send_sigterm()
    # uvicorn has stopped serving and the lifespan (which stops the worker) is ending.
    _wait_for_log(server, "Waiting for application shutdown.")
    if release_first:
        release.touch()
    assert server.wait(timeout=30) in {0, -signal.SIGTERM}
    stopped_at = datetime.now(UTC)
    server.restart()
    return stopped_at


def test_sigterm_lets_a_running_job_finish_within_the_grace_period(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(env={"TASKEXEC_SHUTDOWN_GRACE_SECONDS": "20"})
    release = tmp_path / "release"
    with server.client() as client:
        job_id = execute(client, "block_async", {"release": str(release), "max_wait": 30.0})
        wait_job(client, job_id, statuses=RUNNING, timeout=15)

    stopped_at = _stop_and_restart(server, release, release_first=True)

    with server.client() as client:
        job = get_job(client, job_id)
        assert job["status"] == "completed", job
        assert job["attempts"] == 1
        # Finished by the stopping server, not re-run by the new one.
        assert datetime.fromisoformat(job["finished_at"]) < stopped_at
        assert get_artifact(client, job["result"])["data"]["result"] == {"peak": 1}
        assert count_jobs(client) == 1


def test_sigterm_hands_back_a_job_that_outlives_the_grace_period(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(env={"TASKEXEC_SHUTDOWN_GRACE_SECONDS": "0"})
    release = tmp_path / "release"
    with server.client() as client:
        job_id = execute(client, "block_async", {"release": str(release), "max_wait": 30.0})
        wait_job(client, job_id, statuses=RUNNING, timeout=15)

    stopped_at = _stop_and_restart(server, release, release_first=False)

    with server.client() as client:
        handed_back = get_job(client, job_id)
        assert handed_back["status"] in {"pending", "running"}, handed_back
        assert handed_back["error"] is None
        release.touch()
        job = wait_job(client, job_id, timeout=20)
        assert job["status"] == "completed", job
        # The interrupted attempt was handed back, not counted as a failure.
        assert job["attempts"] == 1
        assert datetime.fromisoformat(job["started_at"]) > stopped_at
        assert get_artifact(client, job["result"])["data"]["result"] == {"peak": 1}
        assert count_jobs(client) == 1
        assert count_jobs(client, "failed") == 0


def test_sigterm_exits_while_a_sync_task_outlives_the_grace_period(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(env={"TASKEXEC_SHUTDOWN_GRACE_SECONDS": "0"})
    release = tmp_path / "release"
    with server.client() as client:
        job_id = execute(client, "block_sync", {"release": str(release), "max_wait": 60.0})
        wait_job(client, job_id, statuses=RUNNING, timeout=15)
    server.send_sigterm()
    _wait_for_log(server, "handed back unfinished jobs")
    # The worker thread cannot be interrupted; the process must exit without joining it.
    assert server.wait(timeout=10) in {0, -signal.SIGTERM}
    release.touch()
    server.restart()
    with server.client() as client:
        job = wait_job(client, job_id, timeout=20)
        assert job["status"] == "completed", job
        assert job["attempts"] == 1
        assert count_jobs(client) == 1
