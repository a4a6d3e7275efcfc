"""The task execution example, run end to end over HTTP against a migrated SQLite file."""

import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from app import TaskRegistry
from examples.task_execution import main as example
from tests.conftest import make_settings, running_client
from tests.helpers import wait_for_job

EXAMPLE_TASKS = [
    "add",
    "count_jobs",
    "failing_task",
    "fan_out",
    "flaky_task",
    "greet_user",
    "long_task",
    "multiply_numbers",
    "process_data",
]


@pytest.fixture
async def client(
    registry: type[TaskRegistry], database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The example's own app, on this test's database, with its worker running."""
    example.register_tasks()
    async with running_client(example.build_app(make_settings(database_url))) as client:
        yield client


async def execute(
    client: httpx.AsyncClient, name: str, params: dict[str, Any] | None = None
) -> str:
    body = {} if params is None else {"params": params}
    response = await client.post(f"/api/v1/tasks/{name}/$execute", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    assert response.headers["location"] == f"/api/v1/jobs/{job_id}"
    return job_id


async def artifact_data(client: httpx.AsyncClient, artifact_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/artifacts/{artifact_id}")
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def run(
    client: httpx.AsyncClient, name: str, params: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Execute a task and wait: the finished job and the data of its run artifact."""
    job = await wait_for_job(client, await execute(client, name, params))
    assert job["result"] is not None
    return job, await artifact_data(client, job["result"])


def test_import_registers_the_tasks_once(registry: type[TaskRegistry]) -> None:
    importlib.reload(example)
    assert registry.list_all() == EXAMPLE_TASKS
    importlib.reload(example)  # already registered: skipped, not a duplicate-name error
    assert registry.list_all() == EXAMPLE_TASKS
    assert example.app.title == "Task Service"


async def test_service_describes_itself(client: httpx.AsyncClient) -> None:
    health = await client.get("/health/ready")
    assert health.json() == {"status": "ok", "checks": {"database": "ok", "worker": "ok"}}
    info = (await client.get("/api/v1/info")).json()
    assert info["display_name"] == "Task Service"
    assert info["max_concurrency"] == 5
    assert info["tasks"] == len(EXAMPLE_TASKS)


async def test_tasks_are_listed_and_filtered_by_tags(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/api/v1/tasks")).json()
    assert [task["name"] for task in listed] == EXAMPLE_TASKS
    simple = (await client.get("/api/v1/tasks", params={"tags": "demo,simple"})).json()
    assert [task["name"] for task in simple] == ["greet_user"]
    math = (await client.get("/api/v1/tasks", params={"tags": "math"})).json()
    assert [(task["name"], task["is_async"]) for task in math] == [
        ("add", True),
        ("multiply_numbers", False),
    ]


async def test_injected_parameters_are_not_request_parameters(client: httpx.AsyncClient) -> None:
    info = (await client.get("/api/v1/tasks/process_data")).json()
    assert info["injected"] == ["database", "artifact_manager"]
    assert [param["name"] for param in info["parameters"]] == ["label"]
    assert set(info["parameters_schema"]["properties"]) == {"label"}


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("greet_user", None, {"message": "Hello, World!"}),
        ("greet_user", {"name": "Alice"}, {"message": "Hello, Alice!"}),
        ("add", {"a": 5, "b": 3}, {"result": 8}),
        ("multiply_numbers", {"a": 6, "b": 7}, {"result": 42}),
    ],
)
async def test_simple_and_parameterised_tasks_complete(
    client: httpx.AsyncClient, name: str, params: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    job, data = await run(client, name, params)
    assert job["status"] == "completed"
    assert job["attempts"] == 1
    assert job["error"] is None
    assert data == {"task_name": name, "params": params or {}, "result": expected, "error": None}


async def test_wrong_params_are_rejected_before_queueing(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/tasks/add/$execute", json={"params": {"a": "5"}})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problems = {tuple(error["loc"]) for error in response.json()["errors"]}
    assert problems == {("params", "a"), ("params", "b")}
    assert (await client.get("/api/v1/jobs")).json()["total"] == 0


async def test_process_data_uses_injected_database_and_artifacts(
    client: httpx.AsyncClient, database_url: str
) -> None:
    job, data = await run(client, "process_data", {"label": "weekly"})
    assert job["status"] == "completed"
    result = data["result"]
    assert result["status"] == "complete"
    assert result["database"] == make_url(database_url).get_backend_name()
    assert await artifact_data(client, result["stored_artifact_id"]) == {"label": "weekly"}


async def test_count_jobs_reads_through_an_injected_session(client: httpx.AsyncClient) -> None:
    await run(client, "greet_user")
    job, data = await run(client, "count_jobs")
    assert job["status"] == "completed"
    assert data["result"] == {"jobs": 2}


async def test_long_task_records_progress(client: httpx.AsyncClient) -> None:
    job, data = await run(client, "long_task", {"steps": 3, "delay": 0.01})
    assert job["status"] == "completed"
    assert job["progress"] == 1.0
    assert job["progress_message"] == "step 3 of 3"
    assert data["result"] == {"steps_completed": 3}


async def test_fan_out_queues_jobs_through_the_injected_scheduler(
    client: httpx.AsyncClient,
) -> None:
    job, data = await run(client, "fan_out", {"names": ["Ada", "Grace"]})
    assert job["status"] == "completed"
    children = [await wait_for_job(client, job_id) for job_id in data["result"]["job_ids"]]
    greetings = [(await artifact_data(client, child["result"]))["result"] for child in children]
    assert greetings == [{"message": "Hello, Ada!"}, {"message": "Hello, Grace!"}]


async def test_failing_task_ends_failed_with_its_traceback(client: httpx.AsyncClient) -> None:
    job, data = await run(client, "failing_task", {"message": "boom"})
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert job["error"] == {"type": "ValueError", "message": "boom"}
    assert data["task_name"] == "failing_task"
    assert data["params"] == {"message": "boom"}
    assert data["result"] is None
    error = data["error"]
    assert (error["type"], error["message"]) == ("ValueError", "boom")
    assert error["traceback"].startswith("Traceback (most recent call last)")
    assert error["traceback"].rstrip().endswith("ValueError: boom")
    # Callers see file names, not the server's paths.
    assert 'File "main.py"' in error["traceback"]
    assert str(Path(example.__file__).parent) not in error["traceback"]


async def test_flaky_task_succeeds_on_its_retry(client: httpx.AsyncClient) -> None:
    job, data = await run(client, "flaky_task")
    assert job["status"] == "completed"
    assert (job["attempts"], job["max_attempts"]) == (2, 3)
    assert job["error"] is None
    assert data["result"] == {"succeeded_on_attempt": 2}
