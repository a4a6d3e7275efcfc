"""Shared by the flow tests: run a job to its end over HTTP, read its result and children,
and the small tasks most flows are made of."""

from collections import Counter
from typing import Any

import httpx

from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry
from tests.helpers import wait_for_job

WAIT = 30.0


async def finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """The job once it has finished (long poll)."""
    return await wait_for_job(client, job_id, within=WAIT)


async def run(client: httpx.AsyncClient, task: str, params: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/api/v1/tasks/{task}/$execute", json={"params": params})
    assert response.status_code == 202, response.text
    return await finished(client, response.json()["job_id"])


async def result_of(client: httpx.AsyncClient, job: dict[str, Any]) -> Any:
    artifact = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()
    return artifact["data"]["result"]


async def children_of(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    page = (await client.get("/api/v1/jobs", params={"parent_id": job_id, "limit": 500})).json()
    items: list[dict[str, Any]] = page["items"]
    assert page["total"] == len(items)
    return items


def register_double(registry: type[TaskRegistry], **options: Any) -> Counter[int]:
    runs: Counter[int] = Counter()

    @registry.register("double", **options)
    async def double(n: int) -> int:
        runs[n] += 1
        return 2 * n

    return runs


def register_fan_out(registry: type[TaskRegistry], **options: Any) -> None:
    @registry.register("fan_out", **options)
    async def fan_out(count: int, ctx: JobContext) -> list[int]:
        children = ctx.map("double", [{"n": n} for n in range(count)])
        return await ctx.gather(*children)
