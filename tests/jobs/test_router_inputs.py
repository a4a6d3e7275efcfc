"""Job routes validate what they pass to the database before using it: a resume point beyond
any event number (SSE) and NUL in a filter are 400 problem+json on both backends."""

import httpx
import pytest

from app.db.database import Database
from app.jobs.models import JobStatus
from tests.conftest import ClientFactory
from tests.helpers import assert_problem
from tests.jobs.helpers import insert_job


@pytest.mark.parametrize("after", [2**31, 2**63, 2**64 + 5])
async def test_an_sse_resume_point_beyond_any_event_is_400(
    client_factory: ClientFactory, database: Database, after: int
) -> None:
    job = await insert_job(database, status=JobStatus.COMPLETED)
    async with client_factory(run_worker=False) as client:
        by_query = await client.get(f"/api/v1/jobs/{job.id}/$stream", params={"after": after})
        by_header = await client.get(
            f"/api/v1/jobs/{job.id}/$stream", headers={"Last-Event-ID": str(after)}
        )
    assert_problem(by_query, 400)
    body = assert_problem(by_header, 400)
    assert "Last-Event-ID" in body["detail"]


async def test_the_largest_resume_point_is_still_a_stream(
    client_factory: ClientFactory, database: Database
) -> None:
    job = await insert_job(database, status=JobStatus.COMPLETED)
    async with client_factory(run_worker=False) as client:
        response = await client.get(f"/api/v1/jobs/{job.id}/$stream", params={"after": 2**31 - 1})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("task", ["a\u0000b", "\u0000"])
async def test_a_nul_in_the_task_filter_is_400(client: httpx.AsyncClient, task: str) -> None:
    assert_problem(await client.get("/api/v1/jobs", params={"task": task}), 400)
