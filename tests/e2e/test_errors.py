"""Errors over real HTTP: problem+json for bad requests, honest failures for failing tasks."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    ServerFactory,
    ServerProcess,
    count_jobs,
    execute,
    get_artifact,
    wait_job,
)
from tests.helpers import assert_problem

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"
BODY_LIMIT = 4096
UNKNOWN_ULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@pytest.fixture
def limited(server_factory: ServerFactory) -> ServerProcess:
    return server_factory(env={"TASKEXEC_MAX_BODY_BYTES": str(BODY_LIMIT)})


INVALID_PARAMS: list[tuple[dict[str, Any], list[str], str]] = [
    ({"a": "6", "b": 2}, ["params", "a"], "int_type"),
    ({"a": 1.5, "b": 2}, ["params", "a"], "int_type"),
    ({"a": 1}, ["params", "b"], "missing"),
    ({"a": 1, "b": 2, "c": 3}, ["params", "c"], "extra_forbidden"),
]


def test_invalid_params_are_rejected_and_never_queued(server: ServerProcess) -> None:
    with server.client() as client:
        for params, loc, error_type in INVALID_PARAMS:
            response = client.post("/api/v1/tasks/add/$execute", json={"params": params})
            body = assert_problem(response, 400)
            assert body["code"] == "validation_error"
            assert len(body["errors"]) == 1, (params, body["errors"])
            assert body["errors"][0]["loc"] == loc
            assert body["errors"][0]["type"] == error_type
        wrong = client.post("/api/v1/tasks/greet/$execute", json={"params": {"name": 5}})
        assert [e["loc"] for e in assert_problem(wrong, 400)["errors"]] == [["params", "name"]]
        not_an_object = client.post("/api/v1/tasks/greet/$execute", json={"params": [1]})
        assert_problem(not_an_object, 400)
        assert count_jobs(client) == 0


def test_every_problem_is_listed(server: ServerProcess) -> None:
    with server.client() as client:
        response = client.post("/api/v1/tasks/add/$execute", json={"params": {"a": "x", "z": 1}})
        body = assert_problem(response, 400)
        assert sorted(tuple(e["loc"]) for e in body["errors"]) == [
            ("params", "a"),
            ("params", "b"),
            ("params", "z"),
        ]
        assert count_jobs(client) == 0


def test_not_found_and_bad_ids(server: ServerProcess) -> None:
    with server.client() as client:
        body = assert_problem(client.post("/api/v1/tasks/nope/$execute", json={}), 404)
        assert body["code"] == "not_found"
        assert_problem(client.get("/api/v1/tasks/nope"), 404)
        assert_problem(client.get("/api/v1/jobs/not-a-job-id"), 400)
        assert_problem(client.get(f"/api/v1/jobs/{UNKNOWN_ULID}"), 404)
        assert_problem(client.get("/api/v1/artifacts/not-an-id"), 400)
        assert_problem(client.get(f"/api/v1/artifacts/{UNKNOWN_ULID}"), 404)
        assert_problem(client.get("/api/v1/no-such-route"), 404)
        assert_problem(client.get("/no-such-page"), 404)
        assert_problem(client.delete("/api/v1/tasks"), 405)
        malformed = client.post(
            "/api/v1/tasks/greet/$execute",
            content=b'{"params": {',
            headers={"content-type": "application/json"},
        )
        assert_problem(malformed, 400)
        assert count_jobs(client) == 0


def test_body_over_the_limit_is_413(limited: ServerProcess) -> None:
    oversized = {"params": {"name": "x" * (BODY_LIMIT + 1)}}
    with limited.client() as client:
        body = assert_problem(client.post("/api/v1/tasks/greet/$execute", json=oversized), 413)
        assert body["code"] == "payload_too_large"
        # Just under the limit is still accepted.
        job_id = execute(client, "greet", {"name": "y" * (BODY_LIMIT - 100)})
        assert wait_job(client, job_id)["status"] == "completed"
        assert count_jobs(client) == 1


def test_streamed_body_over_the_limit_is_413(limited: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"params": {"name": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    with limited.client() as client:
        response = client.post(
            "/api/v1/tasks/greet/$execute",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert "content-length" not in response.request.headers
        assert_problem(response, 413)
    with limited.client() as client:
        assert count_jobs(client) == 0


def _file_paths(traceback: str) -> list[str]:
    return re.findall(r'File "([^"]+)"', traceback)


def test_failing_task_is_failed_with_error_and_redacted_traceback(
    server: ServerProcess, tmp_path: Path
) -> None:
    with server.client() as client:
        job_id = execute(client, "explode", {"message": "kaboom"})
        job = wait_job(client, job_id)
        assert job["status"] == "failed"
        assert job["error"] == {"type": "ValueError", "message": "kaboom"}
        assert job["result"] is not None

        artifact = get_artifact(client, job["result"])
        listed = client.get("/api/v1/artifacts", params={"job_id": job_id}).json()["items"]
    data = artifact["data"]
    assert set(data) == {"task_name", "params", "result", "error"}
    assert data["task_name"] == "explode"
    assert data["params"] == {"message": "kaboom"}
    assert data["result"] is None
    error = data["error"]
    assert set(error) == {"type", "message", "traceback"}
    assert (error["type"], error["message"]) == ("ValueError", "kaboom")
    traceback = error["traceback"]
    assert traceback.rstrip().endswith("ValueError: kaboom")
    assert "_check_message" in traceback

    assert [item["id"] for item in listed] == [artifact["id"]]
    for shown in (traceback, listed[0]["data"]["error"]["traceback"]):
        paths = _file_paths(shown)
        assert "tasks.py" in paths, shown
        for path in paths:
            assert "/" not in path, path
            assert "\\" not in path, path
        assert "/work/" not in shown
        assert str(tmp_path) not in shown
        assert str(Path(__file__).resolve().parents[2]) not in shown
