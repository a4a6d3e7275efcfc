"""`/api/v1/tasks` over HTTP: discovery, `$execute`, and what is never queued."""

from datetime import datetime
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from app.tasks.registry import TaskRegistry
from tests.helpers import assert_problem, wait_for_job

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def _register_catalogue(registry: type[TaskRegistry]) -> None:
    @registry.register("zulu", tags=["a", "b"])
    def zulu() -> str:
        return "z"

    @registry.register("alpha", tags=["a"])
    async def alpha(name: str = "World") -> str:
        """Say hello."""
        return f"Hello, {name}!"

    @registry.register("mike", tags=["b", "a", "c"])
    def mike(x: int) -> int:
        return x

    @registry.register("bravo")
    def bravo() -> None:
        pass


def _noop() -> None:
    pass


async def _job_total(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/v1/jobs")
    assert response.status_code == 200
    total: int = response.json()["total"]
    return total


# Discovery ----------------------------------------------------------------------------------


async def test_list_tasks_empty(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/tasks")

    assert response.status_code == 200
    assert response.json() == []


async def test_list_tasks_is_a_sorted_plain_array(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    _register_catalogue(registry)

    response = await client.get("/api/v1/tasks")

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert [task["name"] for task in body] == ["alpha", "bravo", "mike", "zulu"]
    alpha = body[0]
    assert alpha["docstring"] == "Say hello."
    assert alpha["tags"] == ["a"]
    assert alpha["is_async"] is True
    assert alpha["parameters"] == [
        {"name": "name", "annotation": "str", "default": "'World'", "required": False}
    ]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("a", ["alpha", "mike", "zulu"]),
        ("b", ["mike", "zulu"]),
        ("a,b", ["mike", "zulu"]),
        ("b,a", ["mike", "zulu"]),
        (" a , b ", ["mike", "zulu"]),
        ("a,b,c", ["mike"]),
        ("c", ["mike"]),
        ("a,missing", []),
        ("missing", []),
        ("", ["alpha", "bravo", "mike", "zulu"]),
        (",", ["alpha", "bravo", "mike", "zulu"]),
    ],
)
async def test_list_tasks_tags_filter_is_and(
    registry: type[TaskRegistry], client: httpx.AsyncClient, tags: str, expected: list[str]
) -> None:
    _register_catalogue(registry)

    response = await client.get("/api/v1/tasks", params={"tags": tags})

    assert response.status_code == 200
    assert [task["name"] for task in response.json()] == expected


async def test_get_task(registry: type[TaskRegistry], client: httpx.AsyncClient) -> None:
    @registry.register("describe", tags=["demo"], retries=2, priority=3, description="Desc.")
    def describe(count: int, label: str = "items") -> str:
        """Describe a count."""
        return f"{count} {label}"

    response = await client.get("/api/v1/tasks/describe")

    assert response.status_code == 200
    info = response.json()
    assert info["name"] == "describe"
    assert info["docstring"] == "Describe a count."
    assert info["signature"] == "(count: int, label: str = 'items') -> str"
    assert info["tags"] == ["demo"]
    assert info["parameters"] == [
        {"name": "count", "annotation": "int", "default": None, "required": True},
        {"name": "label", "annotation": "str", "default": "'items'", "required": False},
    ]
    assert info["parameters_schema"]["required"] == ["count"]
    assert set(info["parameters_schema"]["properties"]) == {"count", "label"}
    assert info["injected"] == []
    assert info["options"]["retries"] == 2
    assert info["options"]["priority"] == 3
    assert info["options"]["description"] == "Desc."


async def test_get_unknown_task_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/tasks/nope")

    body = assert_problem(response, 404)
    assert body["code"] == "not_found"
    assert "nope" in body["detail"]


async def test_get_task_with_invalid_name_is_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/tasks/bad name!")

    body = assert_problem(response, 400)
    assert body["code"] == "validation_error"


# Execute ------------------------------------------------------------------------------------


async def test_execute_returns_202_with_job_id_and_location(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("multiply")
    def multiply(a: int) -> int:
        return a * 7

    response = await client.post("/api/v1/tasks/multiply/$execute", json={"params": {"a": 6}})

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"job_id", "message"}
    job_id = body["job_id"]
    assert job_id in body["message"]
    assert "multiply" in body["message"]
    assert response.headers["location"] == f"/api/v1/jobs/{job_id}"
    job = await wait_for_job(client, job_id)
    assert job["task_name"] == "multiply"
    assert job["params"] == {"a": 6}
    assert job["status"] == "completed"
    artifact = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()
    assert artifact["data"]["result"] == 42


async def test_location_header_resolves_to_the_job(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("noop")
    async def noop() -> None:
        pass

    response = await client.post("/api/v1/tasks/noop/$execute")
    job = await client.get(response.headers["location"])

    assert job.status_code == 200
    assert job.json()["id"] == response.json()["job_id"]
    assert job.json()["task_name"] == "noop"


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (None, {}),
        (b"", {"content-type": "application/json"}),
        (b"{}", {"content-type": "application/json"}),
        (b'{"params": {}}', {"content-type": "application/json"}),
        (b"null", {"content-type": "application/json"}),
    ],
)
async def test_execute_without_params(
    registry: type[TaskRegistry],
    client: httpx.AsyncClient,
    content: bytes | None,
    headers: dict[str, str],
) -> None:
    @registry.register("greet")
    async def greet(name: str = "World") -> str:
        return f"Hello, {name}!"

    response = await client.post("/api/v1/tasks/greet/$execute", content=content, headers=headers)

    assert response.status_code == 202, response.text
    job = await wait_for_job(client, response.json()["job_id"])
    assert job["params"] == {}
    artifact = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()
    assert artifact["data"]["result"] == "Hello, World!"


async def test_execute_string_number_is_rejected_and_not_queued(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    """The old bug: `{"a": "6"}` was accepted and ran as `"6" * 7`."""

    @registry.register("multiply")
    def multiply(a: int) -> int:
        return a * 7

    response = await client.post("/api/v1/tasks/multiply/$execute", json={"params": {"a": "6"}})

    body = assert_problem(response, 400)
    assert body["code"] == "validation_error"
    assert body["errors"] == [
        {"loc": ["params", "a"], "msg": "Input should be a valid integer", "type": "int_type"}
    ]
    assert "location" not in response.headers
    assert await _job_total(client) == 0


async def test_execute_reports_one_entry_per_problem(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("three")
    def three(a: int, b: str, c: bool = False) -> None:
        pass

    response = await client.post(
        "/api/v1/tasks/three/$execute", json={"params": {"a": "x", "c": "yes", "d": 1}}
    )

    body = assert_problem(response, 400)
    problems = {tuple(e["loc"]): e["type"] for e in body["errors"]}
    assert problems == {
        ("params", "a"): "int_type",
        ("params", "b"): "missing",
        ("params", "c"): "bool_type",
        ("params", "d"): "extra_forbidden",
    }
    assert len(body["errors"]) == 4
    for entry in body["errors"]:
        assert entry["msg"]
    assert await _job_total(client) == 0


@pytest.mark.parametrize(
    ("params", "problem_type"),
    [
        ({}, "missing"),
        ({"a": 1, "unknown": 2}, "extra_forbidden"),
        ({"a": 1.5}, "int_type"),
        ({"a": None}, "int_type"),
    ],
)
async def test_execute_each_kind_of_bad_param(
    registry: type[TaskRegistry],
    client: httpx.AsyncClient,
    params: dict[str, Any],
    problem_type: str,
) -> None:
    @registry.register("one")
    def one(a: int) -> int:
        return a

    response = await client.post("/api/v1/tasks/one/$execute", json={"params": params})

    body = assert_problem(response, 400)
    assert [e["type"] for e in body["errors"]] == [problem_type]
    assert await _job_total(client) == 0


async def test_execute_unknown_task_is_404_and_not_queued(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/tasks/missing/$execute", json={"params": {"a": 1}})

    body = assert_problem(response, 404)
    assert body["code"] == "not_found"
    assert "missing" in body["detail"]
    assert await _job_total(client) == 0


@pytest.mark.parametrize(
    "content",
    [
        b"[1, 2]",
        b'"text"',
        b"42",
        b'{"params": [1]}',
        b'{"params": "a=1"}',
        b'{"params": 3}',
        b'{"params": null}',
        b"{not json",
    ],
)
async def test_execute_body_or_params_not_an_object_is_400(
    registry: type[TaskRegistry], client: httpx.AsyncClient, content: bytes
) -> None:
    @registry.register("lenient")
    def lenient(**kwargs: Any) -> None:
        pass

    response = await client.post(
        "/api/v1/tasks/lenient/$execute",
        content=content,
        headers={"content-type": "application/json"},
    )

    body = assert_problem(response, 400)
    assert body["code"] == "validation_error"
    assert body["errors"]
    assert all(entry["loc"][0] == "body" for entry in body["errors"])
    assert await _job_total(client) == 0


async def test_execute_with_invalid_task_name_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/tasks/bad.name/$execute", json={})

    assert_problem(response, 400)
    assert await _job_total(client) == 0


async def test_execute_get_is_method_not_allowed(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("noop")
    def noop() -> None:
        pass

    response = await client.get("/api/v1/tasks/noop/$execute")

    assert_problem(response, 405)


async def test_execute_many_jobs_each_get_their_own_id(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("echo")
    async def echo(value: int) -> int:
        return value

    job_ids = []
    for value in range(5):
        response = await client.post(
            "/api/v1/tasks/echo/$execute", json={"params": {"value": value}}
        )
        assert response.status_code == 202
        job_ids.append(response.json()["job_id"])

    assert len(set(job_ids)) == 5
    for value, job_id in enumerate(job_ids):
        job = await wait_for_job(client, job_id)
        result = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()["data"]["result"]
        assert result == value
    assert await _job_total(client) == 5


async def test_execute_with_model_and_datetime_params(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    class Window(BaseModel):
        start: datetime
        minutes: int

    @registry.register("schedule")
    def schedule(window: Window, json: str = "j", copy: int = 0) -> dict[str, Any]:
        return {
            "hour": window.start.hour,
            "minutes": window.minutes,
            "aware": window.start.tzinfo is not None,
            "json": json,
            "copy": copy,
        }

    response = await client.post(
        "/api/v1/tasks/schedule/$execute",
        json={
            "params": {
                "window": {"start": "2024-01-02T03:04:05Z", "minutes": 30},
                "json": "yes",
                "copy": 2,
            }
        },
    )

    assert response.status_code == 202, response.text
    job = await wait_for_job(client, response.json()["job_id"])
    assert job["status"] == "completed", job
    result = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()["data"]["result"]
    assert result == {"hour": 3, "minutes": 30, "aware": True, "json": "yes", "copy": 2}


async def test_names_longer_than_the_route_accepts_cannot_be_registered(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    with pytest.raises(ValueError, match="longer than 200"):
        registry.register_function("t" * 201, _noop)
    registry.register_function("t" * 200, _noop)

    listed = [task["name"] for task in (await client.get("/api/v1/tasks")).json()]
    assert listed == ["t" * 200]
    response = await client.get(f"/api/v1/tasks/{'t' * 200}")
    assert response.status_code == 200, response.text
