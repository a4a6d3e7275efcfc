"""List pages are bounded in bytes: a page stops early at `TASKEXEC_PAGE_MAX_BYTES` (always
holding at least one item), items keep their shape, and a client continues from
`offset + len(items)` until it has every item once. Jobs, job events and logs, artifacts."""

import json
from typing import Any

import httpx
import pytest

from app.artifacts.repository import ArtifactRepository
from app.core.clock import utcnow
from app.db.database import Database
from app.jobs.models import JobEvent, JobStatus
from app.jobs.repository import JobRepository
from tests.conftest import ClientFactory
from tests.jobs.helpers import insert_job

BUDGET = 64 * 1024
PAD = 20_000
COUNT = 10


async def _insert_log_events(database: Database, job_id: str) -> None:
    async with database.transaction() as session:
        for seq in range(1, COUNT + 1):
            session.add(
                JobEvent(
                    job_id=job_id,
                    seq=seq,
                    type="log",
                    created_at=utcnow(),
                    data={"level": "INFO", "logger": "t", "message": "m" * PAD},
                )
            )


async def walk(client: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    """Every item of a list, page by page, asking for 500 at a time; checks each page."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = await client.get(path, params={"limit": 500, "offset": len(items)})
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["limit"] == 500
        assert page["offset"] == len(items)
        if not page["items"]:
            return items
        pages += 1
        assert pages <= COUNT, "a page must hold at least one item"
        assert len(json.dumps(page["items"])) <= BUDGET + 8 * 1024 or len(page["items"]) == 1
        items.extend(page["items"])
        if len(items) >= page["total"]:
            assert page["total"] == COUNT
            return items


async def test_job_pages_stop_at_the_byte_budget(
    client_factory: ClientFactory, database: Database
) -> None:
    ids = [(await insert_job(database, params={"pad": "x" * PAD, "n": n})).id for n in range(COUNT)]
    async with client_factory(run_worker=False, page_max_bytes=BUDGET) as client:
        first = (await client.get("/api/v1/jobs", params={"limit": 500})).json()
        items = await walk(client, "/api/v1/jobs")

    assert 1 <= len(first["items"]) < COUNT
    assert first["total"] == COUNT
    assert [item["id"] for item in items] == ids[::-1]
    # Items keep their shape: params in full.
    assert all(item["params"]["pad"] == "x" * PAD for item in items)


async def test_an_item_over_the_budget_is_a_page_of_its_own(
    client_factory: ClientFactory, database: Database
) -> None:
    big = await insert_job(database, params={"pad": "x" * (2 * BUDGET)})
    small = await insert_job(database, params={})
    async with client_factory(run_worker=False, page_max_bytes=BUDGET) as client:
        first = (await client.get("/api/v1/jobs", params={"limit": 10})).json()
        second = (await client.get("/api/v1/jobs", params={"limit": 10, "offset": 1})).json()

    # Newest first: the small job fits, the big one would pass the budget, so the page ends;
    # from its offset the big one is a page of its own.
    assert [item["id"] for item in first["items"]] == [small.id]
    assert [item["id"] for item in second["items"]] == [big.id]
    assert first["total"] == second["total"] == 2


async def test_event_and_log_pages_stop_at_the_byte_budget(
    client_factory: ClientFactory, database: Database
) -> None:
    job = await insert_job(database, status=JobStatus.COMPLETED, event_seq=COUNT)
    await _insert_log_events(database, job.id)
    async with client_factory(run_worker=False, page_max_bytes=BUDGET) as client:
        events = await walk(client, f"/api/v1/jobs/{job.id}/events")
        logs = await walk(client, f"/api/v1/jobs/{job.id}/logs")

    assert [event["seq"] for event in events] == list(range(1, COUNT + 1))
    assert [line["seq"] for line in logs] == list(range(1, COUNT + 1))
    assert all(line["message"] == "m" * PAD for line in logs)


async def test_artifact_pages_stop_at_the_byte_budget(
    client_factory: ClientFactory, database: Database
) -> None:
    async with database.transaction() as session:
        repo = ArtifactRepository(session)
        ids = [(await repo.add({"pad": "y" * PAD, "n": n})).id for n in range(COUNT)]
    async with client_factory(run_worker=False, page_max_bytes=BUDGET) as client:
        first = (await client.get("/api/v1/artifacts", params={"limit": 500})).json()
        items = await walk(client, "/api/v1/artifacts")

    assert 1 <= len(first["items"]) < COUNT
    assert [item["id"] for item in items] == ids[::-1]


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/artifacts"])
async def test_the_openapi_tells_how_to_continue(client: httpx.AsyncClient, path: str) -> None:
    schema = (await client.get("/openapi.json")).json()
    description = schema["paths"][path]["get"]["description"]
    assert "offset + len(items)" in description


async def test_events_after_reads_a_batch_within_the_budget(
    database: Database,
) -> None:
    job = await insert_job(database, status=JobStatus.COMPLETED, event_seq=COUNT)
    await _insert_log_events(database, job.id)
    async with database.read_session() as session:
        repo = JobRepository(session)
        batch = await repo.events_after(job.id, after=2, limit=500, max_bytes=BUDGET)
        unbounded = await repo.events_after(job.id, after=2, limit=500)

    assert [event.seq for event in batch] == list(range(3, 3 + len(batch)))
    assert 1 <= len(batch) <= BUDGET // PAD
    assert len(unbounded) == COUNT - 2


async def test_a_stream_delivers_every_event_across_byte_bounded_batches(
    client_factory: ClientFactory, database: Database
) -> None:
    job = await insert_job(database, status=JobStatus.COMPLETED, event_seq=COUNT)
    await _insert_log_events(database, job.id)
    async with client_factory(run_worker=False, page_max_bytes=BUDGET) as client:
        response = await client.get(f"/api/v1/jobs/{job.id}/$stream")

    ids = [line[4:] for line in response.text.splitlines() if line.startswith("id: ")]
    assert ids == [str(seq) for seq in range(1, COUNT + 1)]
