"""Small helpers shared by HTTP-level tests."""

import asyncio
from typing import Any

import httpx

TERMINAL_STATUSES = frozenset({"completed", "failed", "canceled"})


async def wait_for_job(
    client: httpx.AsyncClient, job_id: str, *, within: float = 15.0, interval: float = 0.05
) -> dict[str, Any]:
    """Poll `GET /api/v1/jobs/{id}` until the job is in a terminal state; fail after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        response = await client.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in TERMINAL_STATUSES:
            return job
        if loop.time() >= deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {within}s")
        await asyncio.sleep(interval)


async def execute(
    client: httpx.AsyncClient, task_name: str, params: dict[str, Any] | None = None
) -> str:
    """Submit `task_name` with `params`; assert it was accepted and return the job id."""
    body = None if params is None else {"params": params}
    response = await client.post(f"/api/v1/tasks/{task_name}/$execute", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def run_to_end(
    client: httpx.AsyncClient, task_name: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Submit a task, wait for its job to finish, and return the final job."""
    return await wait_for_job(client, await execute(client, task_name, params))


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The response is a problem+json answer with `status` (and `code`, if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    if code is not None:
        assert body["code"] == code, body
    return body


async def job_events(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    """Every event of a job, in order."""
    response = await client.get(f"/api/v1/jobs/{job_id}/events", params={"limit": 500})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
