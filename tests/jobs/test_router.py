"""`/api/v1/jobs` over HTTP: list, read, cancel, delete, and their problem responses."""

import re
from typing import Any

import pytest

from app.core.clock import utcnow
from app.db.database import Database
from app.jobs.models import JobStatus
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import assert_problem, wait_for_job
from tests.jobs.helpers import ago, fetch_job, insert_job

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")
UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
PROBLEM_JSON = "application/problem+json"


async def test_list_is_a_page_newest_first(
    client_factory: ClientFactory, database: Database
) -> None:
    ids = [(await insert_job(database, task_name=f"t{n}")).id for n in range(5)]

    async with client_factory(run_worker=False) as client:
        response = await client.get("/api/v1/jobs", params={"limit": 2, "offset": 1})

    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"items", "total", "limit", "offset"}
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    assert [item["id"] for item in page["items"]] == [ids[3], ids[2]]


async def test_list_default_limit_and_cap(
    client_factory: ClientFactory, database: Database
) -> None:
    for _ in range(6):
        await insert_job(database)

    async with client_factory(run_worker=False, page_limit_default=2, page_limit_max=4) as client:
        default = (await client.get("/api/v1/jobs")).json()
        capped = (await client.get("/api/v1/jobs", params={"limit": 1000})).json()
        beyond = (await client.get("/api/v1/jobs", params={"offset": 10})).json()

    assert (default["limit"], len(default["items"]), default["total"]) == (2, 2, 6)
    assert (capped["limit"], len(capped["items"]), capped["total"]) == (4, 4, 6)
    assert (beyond["items"], beyond["total"]) == ([], 6)


async def test_list_filters_by_status_and_task(
    client_factory: ClientFactory, database: Database
) -> None:
    a_pending = await insert_job(database, task_name="a")
    a_failed = await insert_job(database, task_name="a", status=JobStatus.FAILED)
    b_failed = await insert_job(database, task_name="b", status=JobStatus.FAILED)

    async with client_factory(run_worker=False) as client:
        failed = (await client.get("/api/v1/jobs", params={"status": "failed"})).json()
        of_a = (await client.get("/api/v1/jobs", params={"task": "a"})).json()
        both = (await client.get("/api/v1/jobs", params={"status": "failed", "task": "b"})).json()
        none = (await client.get("/api/v1/jobs", params={"task": "zzz"})).json()

    assert [j["id"] for j in failed["items"]] == [b_failed.id, a_failed.id]
    assert failed["total"] == 2
    assert [j["id"] for j in of_a["items"]] == [a_failed.id, a_pending.id]
    assert [j["id"] for j in both["items"]] == [b_failed.id]
    assert (none["items"], none["total"]) == ([], 0)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"status": "exploded"}, id="bad-status"),
        pytest.param({"limit": 0}, id="zero-limit"),
        pytest.param({"offset": -1}, id="negative-offset"),
        pytest.param({"limit": "many"}, id="non-numeric-limit"),
    ],
)
async def test_list_rejects_bad_query_parameters(
    client_factory: ClientFactory, params: dict[str, Any]
) -> None:
    async with client_factory(run_worker=False) as client:
        response = await client.get("/api/v1/jobs", params=params)

    body = assert_problem(response, 400)
    assert body["code"] == "validation_error"


async def test_get_shows_every_field_of_a_finished_job(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def greet(name: str) -> str:
        return f"hello {name}"

    registry.register_function("greet", greet, retries=1, priority=3)

    async with client_factory() as client:
        accepted = await client.post(
            "/api/v1/tasks/greet/$execute", json={"params": {"name": "Ada"}}
        )
        job_id = accepted.json()["job_id"]
        job = await wait_for_job(client, job_id)
        assert job["status"] == "completed", job
        artifact = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()

    required = {
        "id",
        "task_name",
        "status",
        "params",
        "created_at",
        "started_at",
        "finished_at",
        "attempts",
        "error",
        "progress",
        "result",
    }
    assert required <= set(job)
    assert job["id"] == job_id
    assert job["task_name"] == "greet"
    assert job["status"] == "completed"
    assert job["params"] == {"name": "Ada"}
    assert job["attempts"] == 1
    assert job["max_attempts"] == 2
    assert job["priority"] == 3
    assert job["error"] is None
    assert job["cancel_requested"] is False
    for field in ("created_at", "run_at", "started_at", "finished_at"):
        assert TIMESTAMP.match(job[field]), f"{field}={job[field]!r}"
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]
    assert artifact["id"] == job["result"]
    assert artifact["job_id"] == job_id
    assert artifact["data"]["result"] == "hello Ada"


async def test_get_pending_job_has_null_timestamps_and_result(
    client_factory: ClientFactory, database: Database
) -> None:
    job = await insert_job(database, task_name="later", params={"x": [1, 2]})

    async with client_factory(run_worker=False) as client:
        body = (await client.get(f"/api/v1/jobs/{job.id}")).json()
        lower = await client.get(f"/api/v1/jobs/{job.id.lower()}")

    assert body["status"] == "pending"
    assert body["params"] == {"x": [1, 2]}
    assert (body["started_at"], body["finished_at"], body["result"]) == (None, None, None)
    assert (body["attempts"], body["progress"], body["error"]) == (0, None, None)
    assert TIMESTAMP.match(body["created_at"])
    assert lower.status_code == 200
    assert lower.json()["id"] == job.id


async def test_get_shows_a_failed_jobs_error_summary(
    client_factory: ClientFactory, database: Database
) -> None:
    job = await insert_job(
        database,
        status=JobStatus.FAILED,
        attempts=1,
        started_at=ago(2),
        finished_at=utcnow(),
        error={"type": "ValueError", "message": "bad"},
        progress=0.5,
        progress_message="half",
    )

    async with client_factory(run_worker=False) as client:
        body = (await client.get(f"/api/v1/jobs/{job.id}")).json()

    assert body["status"] == "failed"
    assert body["error"] == {"type": "ValueError", "message": "bad"}
    assert (body["progress"], body["progress_message"]) == (0.5, "half")


@pytest.mark.parametrize("bad_id", ["not-a-ulid", "0" * 25, "0" * 27, "01ARZ3NDEKTSV4RRFFQ69G5FAU"])
async def test_get_malformed_id_is_a_bad_request(
    client_factory: ClientFactory, bad_id: str
) -> None:
    async with client_factory(run_worker=False) as client:
        response = await client.get(f"/api/v1/jobs/{bad_id}")

    assert_problem(response, 400)


async def test_get_unknown_job_is_not_found(client_factory: ClientFactory) -> None:
    async with client_factory(run_worker=False) as client:
        response = await client.get(f"/api/v1/jobs/{UNKNOWN_ID}")

    body = assert_problem(response, 404)
    assert body["code"] == "not_found"
    assert UNKNOWN_ID in body["detail"]


async def test_cancel_pending_then_again(client_factory: ClientFactory, database: Database) -> None:
    job = await insert_job(database)

    async with client_factory(run_worker=False) as client:
        first = await client.post(f"/api/v1/jobs/{job.id}/$cancel")
        second = await client.post(f"/api/v1/jobs/{job.id}/$cancel")

    assert first.status_code == 200
    assert first.json()["status"] == "canceled"
    assert first.json()["cancel_requested"] is True
    assert TIMESTAMP.match(first.json()["finished_at"])
    body = assert_problem(second, 409)
    assert body["code"] == "conflict"
    assert (await fetch_job(database, job.id)).status == JobStatus.CANCELED


async def test_cancel_unknown_or_malformed(client_factory: ClientFactory) -> None:
    async with client_factory(run_worker=False) as client:
        unknown = await client.post(f"/api/v1/jobs/{UNKNOWN_ID}/$cancel")
        malformed = await client.post("/api/v1/jobs/nope/$cancel")

    assert_problem(unknown, 404)
    assert_problem(malformed, 400)


async def test_delete_finished_job_and_its_artifacts(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    async def greet(name: str) -> str:
        return f"hello {name}"

    registry.register_function("greet", greet)

    async with client_factory() as client:
        accepted = await client.post(
            "/api/v1/tasks/greet/$execute", json={"params": {"name": "Ada"}}
        )
        job_id = accepted.json()["job_id"]
        job = await wait_for_job(client, job_id)
        assert job["status"] == "completed", job
        listed = (await client.get("/api/v1/artifacts", params={"job_id": job_id})).json()
        assert listed["total"] == 1

        deleted = await client.delete(f"/api/v1/jobs/{job_id}")
        after = await client.get(f"/api/v1/jobs/{job_id}")
        artifact_after = await client.get(f"/api/v1/artifacts/{job['result']}")
        listed_after = (await client.get("/api/v1/artifacts", params={"job_id": job_id})).json()
        again = await client.delete(f"/api/v1/jobs/{job_id}")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(after, 404)
    assert_problem(artifact_after, 404)
    assert listed_after["total"] == 0
    assert_problem(again, 404)


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.RUNNING])
async def test_delete_unfinished_job_conflicts(
    client_factory: ClientFactory, database: Database, status: JobStatus
) -> None:
    job = await insert_job(database, status=status)

    async with client_factory(run_worker=False) as client:
        response = await client.delete(f"/api/v1/jobs/{job.id}")

    assert_problem(response, 409)
    assert (await fetch_job(database, job.id)).status == status


async def test_delete_unknown_or_malformed(client_factory: ClientFactory) -> None:
    async with client_factory(run_worker=False) as client:
        unknown = await client.delete(f"/api/v1/jobs/{UNKNOWN_ID}")
        malformed = await client.delete("/api/v1/jobs/nope")

    assert_problem(unknown, 404)
    assert_problem(malformed, 400)
