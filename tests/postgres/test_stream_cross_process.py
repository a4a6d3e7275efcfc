"""Following a job across processes on PostgreSQL: an API process without a worker streams
and waits on jobs that a separate worker process runs, woken by NOTIFY rather than polling.

The worker polls only every 30 s and beats its heart every 40 s, and the API's streams re-check
only every 5 s, so a job that is picked up, run and seen to end within 4 s got there through
notifications.
"""

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.jobs.events import TERMINAL_EVENTS
from tests.helpers import Sse, asse_events, poll_until
from tests.postgres.conftest import AppProcess, Postgres, Processes

pytestmark = pytest.mark.postgres

TASK_MODULES = "tests.postgres.tasks,tests.e2e.live_tasks"
WORKER_ENV = {
    "TASKEXEC_TASK_MODULES": TASK_MODULES,
    "TASKEXEC_POLL_INTERVAL": "30",
    "TASKEXEC_LEASE_SECONDS": "120",
}
# Below the API's 5 s re-check: only notifications can make it in time.
NOTIFIED_WITHIN = 4.0


def start_split(processes: Processes, pg: Postgres) -> tuple[AppProcess, AppProcess]:
    """A worker process, then an API process without a worker; both listening."""
    worker = processes.worker(env=WORKER_ENV)
    listening = pg.listeners()
    api = processes.api(env={"TASKEXEC_TASK_MODULES": TASK_MODULES})
    # The API listens for other processes' job events; let it be connected first.
    poll_until(lambda: pg.listeners() > listening, within=20, what="the API to listen")
    return worker, api


def assert_complete_history(events: list[Sse]) -> None:
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert [e.event for e in events if e.event in TERMINAL_EVENTS] == [events[-1].event]


def ran_in(job: dict[str, Any], process: AppProcess) -> bool:
    attempts: list[dict[str, Any]] = job["attempt_history"]
    return [a["worker_id"].split(":")[1] for a in attempts] == [str(process.pid)]


def test_a_stream_on_the_api_follows_a_job_in_the_worker_process_live(
    processes: Processes, pg: Postgres, tmp_path: Path
) -> None:
    worker, api = start_split(processes, pg)
    release = tmp_path / "release"

    async def follow() -> tuple[list[Sse], list[Sse], dict[str, Any]]:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
            response = await client.post(
                "/api/v1/tasks/live_steps/$execute", json={"params": {"release": str(release)}}
            )
            assert response.status_code == 202, response.text
            job_id = response.json()["job_id"]
            before: list[Sse] = []
            after: list[Sse] = []
            async with client.stream("GET", f"/api/v1/jobs/{job_id}/$stream") as stream:
                assert stream.status_code == 200
                events = asse_events(stream)
                async with asyncio.timeout(NOTIFIED_WITHIN):
                    async for event in events:
                        before.append(event)
                        kinds = {e.event for e in before}
                        if {"created", "started"} <= kinds and kinds & {"progress", "log"}:
                            break
                running = (await client.get(f"/api/v1/jobs/{job_id}")).json()
                assert running["status"] == "running", running
                release.touch()
                async with asyncio.timeout(NOTIFIED_WITHIN):
                    after.extend([event async for event in events])
            job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            return before, after, job

    before, after, job = asyncio.run(follow())

    history = before + after
    assert_complete_history(history)
    assert history[-1].event == "completed"
    assert [e.data["data"]["message"] for e in history if e.event == "log"] == [
        "first step",
        "last step",
    ]
    assert job["status"] == "completed"
    assert ran_in(job, worker)


def test_a_quick_job_run_elsewhere_is_streamed_and_waited_for_through_notify(
    processes: Processes, pg: Postgres
) -> None:
    worker, api = start_split(processes, pg)

    async def submit(client: httpx.AsyncClient, n: int) -> str:
        response = await client.post(
            "/api/v1/tasks/pg_quick/$execute", json={"params": {"n": n, "pause": 0.3}}
        )
        assert response.status_code == 202, response.text
        job_id: str = response.json()["job_id"]
        return job_id

    async def follow() -> tuple[list[Sse], dict[str, Any], dict[str, Any]]:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
            async with asyncio.timeout(NOTIFIED_WITHIN):
                streamed = await submit(client, 1)
                async with client.stream("GET", f"/api/v1/jobs/{streamed}/$stream") as stream:
                    assert stream.status_code == 200
                    events = [event async for event in asse_events(stream)]
            async with asyncio.timeout(NOTIFIED_WITHIN):
                waited = await submit(client, 2)
                response = await client.get(f"/api/v1/jobs/{waited}", params={"wait": 30})
                assert response.status_code == 200, response.text
            streamed_job = (await client.get(f"/api/v1/jobs/{streamed}")).json()
            return events, streamed_job, response.json()

    events, streamed_job, waited_job = asyncio.run(follow())

    assert_complete_history(events)
    assert [e.event for e in events] == ["created", "started", "completed"]
    assert events[-1].data["data"]["result"] == streamed_job["result"]
    assert ran_in(streamed_job, worker)
    assert waited_job["status"] == "completed"
    assert ran_in(waited_job, worker)
    assert not ran_in(waited_job, api)
