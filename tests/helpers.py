"""Small helpers shared by HTTP-level tests."""

import asyncio
import json
from typing import Any

import httpx

TERMINAL_STATUSES = frozenset({"completed", "failed", "canceled"})


async def wait_for_job(
    client: httpx.AsyncClient, job_id: str, *, within: float = 15.0
) -> dict[str, Any]:
    """The job once it is terminal, waited for with the server's long poll
    (`GET /api/v1/jobs/{id}?wait=`), woken by the job's own events; fail after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        remaining = deadline - loop.time()
        wait = max(0.01, min(remaining, 10.0))
        response = await client.get(f"/api/v1/jobs/{job_id}", params={"wait": wait})
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in TERMINAL_STATUSES:
            return job
        if loop.time() >= deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {within}s")


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


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params or None)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def log_messages(client: httpx.AsyncClient, job_id: str) -> list[str]:
    page = await get_json(client, f"/api/v1/jobs/{job_id}/logs", limit=500)
    return [item["message"] for item in page["items"]]


async def events_of(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    page = await get_json(client, f"/api/v1/jobs/{job_id}/events", limit=500)
    items: list[dict[str, Any]] = page["items"]
    return items


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Events of a text/event-stream body: dicts of id, event and decoded data."""
    events: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    for line in text.splitlines():
        if not line:
            if fields:
                events.append(fields)
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[key] = json.loads(value) if key == "data" else value
    if fields:
        events.append(fields)
    return events


PROBLEM_KEYS = frozenset({"type", "title", "status", "detail", "code"})


async def job_total(client: httpx.AsyncClient) -> int:
    """How many jobs the service holds (`total` of the job list)."""
    response = await client.get("/api/v1/jobs")
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """Assert `response` is an RFC 9457 problem with `status` (and `code`, if given): the
    media type, every member, a `type` naming its `code`; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["type"] == f"urn:taskexec:problem:{body['code']}"
    if code is not None:
        assert body["code"] == code, body
    return body
