"""The documented workflow against a real server: discover, execute, follow, read the result."""

import json
import re
import shutil
import subprocess
from typing import Any

import pytest

from tests.e2e.conftest import (
    ServerProcess,
    execute,
    get_artifact,
    get_job,
    wait_job,
)

pytestmark = pytest.mark.e2e

CURL = shutil.which("curl")


def test_list_tasks_sorted_and_filtered_by_all_tags(server: ServerProcess) -> None:
    with server.client() as client:
        response = client.get("/api/v1/tasks")
        assert response.status_code == 200
        names = [task["name"] for task in response.json()]
        assert names == sorted(names)
        assert {"greet", "add", "explode", "block_async", "block_sync"} <= set(names)

        def filtered(tags: str) -> list[str]:
            reply = client.get("/api/v1/tasks", params={"tags": tags})
            assert reply.status_code == 200
            return [task["name"] for task in reply.json()]

        assert filtered("demo") == ["add", "greet"]
        assert filtered("demo,math") == ["add"]
        assert filtered("e2e,blocking") == ["block_async", "block_retry", "block_sync"]
        assert filtered("blocking,sync") == ["block_sync"]
        assert filtered("math,simple") == []


def test_get_task_describes_its_parameters(server: ServerProcess) -> None:
    with server.client() as client:
        response = client.get("/api/v1/tasks/greet")
    assert response.status_code == 200
    info = response.json()
    assert info["name"] == "greet"
    assert info["docstring"] == "Return a greeting."
    assert info["tags"] == ["e2e", "demo", "simple"]
    assert info["parameters"] == [
        {"name": "name", "annotation": "str", "default": "'World'", "required": False}
    ]
    assert info["parameters_schema"]["properties"]["name"]["type"] == "string"
    assert info["parameters_schema"].get("required", []) == []


def test_execute_follow_and_read_the_artifact(server: ServerProcess) -> None:
    with server.client() as client:
        response = client.post("/api/v1/tasks/greet/$execute", json={"params": {"name": "Alice"}})
        assert response.status_code == 202
        job_id = response.json()["job_id"]
        assert response.headers["location"] == f"/api/v1/jobs/{job_id}"
        assert job_id in response.json()["message"]

        job = wait_job(client, job_id)
        assert job["status"] == "completed"
        assert job["params"] == {"name": "Alice"}
        assert job["error"] is None
        assert job["attempts"] == 1
        for stamp in ("created_at", "started_at", "finished_at"):
            assert job[stamp].endswith("+00:00"), job[stamp]
        assert job["created_at"] <= job["started_at"] <= job["finished_at"]

        artifact = get_artifact(client, job["result"])
    assert artifact["job_id"] == job_id
    assert artifact["data"] == {
        "task_name": "greet",
        "params": {"name": "Alice"},
        "result": {"message": "Hello, Alice!"},
        "error": None,
    }


def test_sync_task_runs_and_body_is_optional(server: ServerProcess) -> None:
    with server.client() as client:
        added = execute(client, "add", {"a": 2, "b": 40})
        defaulted = execute(client, "greet")
        assert get_artifact(client, wait_job(client, added)["result"])["data"]["result"] == {
            "sum": 42
        }
        job = wait_job(client, defaulted)
        assert job["params"] == {}
        data = get_artifact(client, job["result"])["data"]
    assert data["result"] == {"message": "Hello, World!"}


def _curl(*args: str) -> tuple[int, dict[str, str], Any]:
    """Run curl (no shell), returning status, lower-cased headers and the JSON body."""
    assert CURL is not None
    done = subprocess.run(
        [CURL, "--silent", "--show-error", "--max-time", "10", "--include", *args],
        capture_output=True,
        check=True,
        timeout=20,
    )
    head, _, body = done.stdout.decode().partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    status = int(status_line.split()[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, json.loads(body)


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_readme_curl_workflow(server: ServerProcess) -> None:
    base = server.base_url
    status, headers, _ = _curl(f"{base}/api/v1/tasks")
    assert status == 200
    assert headers["content-type"] == "application/json"

    status, headers, accepted = _curl(
        "-X",
        "POST",
        f"{base}/api/v1/tasks/greet/$execute",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"params": {"name": "Alice"}}',
    )
    assert status == 202
    job_id = accepted["job_id"]
    assert re.fullmatch(r"[0-9A-Z]{26}", job_id)
    assert headers["location"] == f"/api/v1/jobs/{job_id}"

    # The long poll: answers once the job is finished (curl gives up after 10 s).
    code, _, job = _curl(f"{base}{headers['location']}?wait=8")
    assert code == 200
    assert job["status"] == "completed", job
    status, _, artifact = _curl(f"{base}/api/v1/artifacts/{job['result']}")
    assert status == 200
    assert artifact["data"] == {
        "task_name": "greet",
        "params": {"name": "Alice"},
        "result": {"message": "Hello, Alice!"},
        "error": None,
    }
    with server.client() as client:
        assert get_job(client, job_id)["result"] == job["result"]


def test_swagger_ui_is_served_from_local_assets(server: ServerProcess) -> None:
    with server.client() as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assets = re.findall(r"""["'](/_docs-static/[^"']+)["']""", html)
        assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets), html
        assert any(asset.endswith("swagger-ui.css") for asset in assets), html
        assert "cdn.jsdelivr.net" not in html
        assert "unpkg.com" not in html
        for asset in assets:
            reply = client.get(asset)
            assert reply.status_code == 200, asset
            assert reply.content, asset
        assert "/openapi.json" in html

        spec = client.get("/openapi.json")
        assert spec.status_code == 200
        paths = spec.json()["paths"]
    execute_path = paths["/api/v1/tasks/{name}/$execute"]
    assert execute_path["post"]["operationId"].startswith("execute_task")
    assert {"202", "400", "404", "413"} <= set(execute_path["post"]["responses"])
    assert "/api/v1/jobs/{job_id}" in paths
    assert "/api/v1/artifacts/{artifact_id}" in paths
