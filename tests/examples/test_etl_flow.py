"""The ETL flow example, run over HTTP with its own app, on SQLite and PostgreSQL."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app import TaskRegistry
from examples.etl_flow import main as example
from tests.conftest import make_settings, running_client


@pytest.fixture
async def client(
    registry: type[TaskRegistry], database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The example's app on this test's database, its worker limited to one job at a time."""
    example.register_tasks()
    settings = make_settings(database_url, max_concurrency=1)
    async with running_client(example.build_app(settings)) as client:
        yield client


async def test_the_flow_extracts_maps_and_loads(client: httpx.AsyncClient) -> None:
    tasks = (await client.get("/api/v1/tasks", params={"tags": "etl"})).json()
    assert [task["name"] for task in tasks] == list(example.TASKS)
    response = await client.post(
        "/api/v1/tasks/etl/$execute", json={"params": {"rows": 45, "chunk_size": 10}}
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    job = (await client.get(f"/api/v1/jobs/{job_id}", params={"wait": 30})).json()
    assert job["status"] == "completed", job
    artifact = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()
    summary: dict[str, Any] = artifact["data"]["result"]
    expected_totals: dict[str, float] = {}
    for n in range(45):
        country = "NO" if n % 3 else "SE"
        expected_totals[country] = expected_totals.get(country, 0.0) + n * 1.5 * 1.1
    assert summary["rows"] == 45
    assert summary["chunks"] == 5
    assert summary["totals"] == pytest.approx(expected_totals, abs=0.05)

    tree = (await client.get(f"/api/v1/jobs/{job_id}/tree")).json()
    children = tree["root"]["children"]
    assert [c["task_name"] for c in children] == ["extract", *["transform"] * 5, "load"]
    assert [c["child_key"] for c in children] == [
        "extract",
        *[f"chunk[{i}]" for i in range(5)],
        "load",
    ]
    assert [c["map_index"] for c in children[1:6]] == [0, 1, 2, 3, 4]
    assert all(c["status"] == "completed" and c["result"] for c in children)
    assert tree["node_count"] == 8
