"""The concurrency limit and many concurrent jobs, against a real server on SQLite."""

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    ServerFactory,
    count_jobs,
    execute,
    get_artifact,
    list_all,
    wait_job,
)
from tests.helpers import poll_until, wait_for_job

pytestmark = pytest.mark.e2e

LIMIT = 3
SUBMITTED = 9


@pytest.mark.parametrize("task", ["block_async", "block_sync"])
def test_running_jobs_never_exceed_the_concurrency_limit(
    server_factory: ServerFactory, tmp_path: Path, task: str
) -> None:
    server = server_factory(max_concurrency=LIMIT)
    release = tmp_path / "release"
    params = {"release": str(release), "max_wait": 30.0}
    running_seen: list[int] = []

    def running() -> int:
        count = count_jobs(client, "running")
        running_seen.append(count)
        return count

    with server.client() as client:
        job_ids = [execute(client, task, params) for _ in range(SUBMITTED)]
        # No wait API for "n jobs running"; the tasks' own peaks below are the real measure.
        poll_until(lambda: running() == LIMIT, within=15, what=f"{LIMIT} running jobs")
        assert count_jobs(client, "pending") == SUBMITTED - LIMIT
        assert count_jobs(client, "completed") == 0
        # The blocked tasks hold worker slots (threads for sync ones), not the HTTP loop.
        assert client.get("/health", timeout=5).status_code == 200
        assert client.get("/api/v1/jobs", params={"limit": 1}, timeout=5).status_code == 200

        release.touch()
        peaks = []
        for job_id in job_ids:
            job = wait_job(client, job_id, timeout=30)
            assert job["status"] == "completed", job
            peaks.append(get_artifact(client, job["result"])["data"]["result"]["peak"])
        assert count_jobs(client, "completed") == SUBMITTED
    assert max(running_seen) == LIMIT, running_seen
    assert max(peaks) == LIMIT, peaks


TOTAL_JOBS = 400
HTTP_CONCURRENCY = 32


async def _submit_all(client: httpx.AsyncClient) -> list[httpx.Response]:
    gate = asyncio.Semaphore(HTTP_CONCURRENCY)

    async def submit(n: int) -> httpx.Response:
        async with gate:
            return await client.post("/api/v1/tasks/quick/$execute", json={"params": {"n": n}})

    return await asyncio.gather(*(submit(n) for n in range(TOTAL_JOBS)))


async def _total(client: httpx.AsyncClient, path: str, **params: str) -> int:
    response = await client.get(path, params={"limit": 1, **params})
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


async def test_many_concurrent_jobs_on_sqlite_lose_nothing(server_factory: ServerFactory) -> None:
    server = server_factory(max_concurrency=8)
    limits = httpx.Limits(max_connections=HTTP_CONCURRENCY)
    async with server.async_client(limits=limits, timeout=30) as client:
        responses = await _submit_all(client)
        assert [r.status_code for r in responses] == [202] * TOTAL_JOBS
        job_ids = {r.json()["job_id"] for r in responses}
        assert len(job_ids) == TOTAL_JOBS

        for job_id in job_ids:
            assert (await wait_for_job(client, job_id, within=60))["status"] == "completed"

        assert await _total(client, "/api/v1/jobs") == TOTAL_JOBS
        assert await _total(client, "/api/v1/jobs", status="completed") == TOTAL_JOBS
        assert await _total(client, "/api/v1/artifacts") == TOTAL_JOBS

    with server.client(timeout=30) as sync_client:
        jobs = list_all(sync_client, "/api/v1/jobs")
        artifacts = list_all(sync_client, "/api/v1/artifacts")
    assert {job["id"] for job in jobs} == job_ids
    by_id = {artifact["id"]: artifact for artifact in artifacts}
    assert len(by_id) == TOTAL_JOBS
    for job in jobs:
        artifact = by_id[job["result"]]
        assert artifact["job_id"] == job["id"]
        n = job["params"]["n"]
        assert artifact["data"] == {
            "task_name": "quick",
            "params": {"n": n},
            "result": {"n": n},
            "error": None,
        }
    assert sorted(job["params"]["n"] for job in jobs) == list(range(TOTAL_JOBS))
