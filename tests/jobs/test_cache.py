"""Result caching: keys, hits, joins of identical in-flight requests, refresh and bypass,
failures and expiry, forgetting a task's entries, and the counters in `/metrics`."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.core.clock import utcnow
from app.db.database import Database
from app.jobs.cache import cache_key
from app.jobs.models import Job
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry
from tests.conftest import make_settings, running_client
from tests.helpers import assert_problem, events_of, wait_for_job


class Calls:
    def __init__(self) -> None:
        self.count = 0
        self.release = asyncio.Event()
        self.release.set()


@pytest.fixture
def calls(registry: type[TaskRegistry]) -> Calls:
    calls = Calls()

    @registry.register("square", cache_ttl=3600, cache_version=1)
    async def square(n: int) -> int:
        calls.count += 1
        await calls.release.wait()
        return n * n

    @registry.register("shaky", cache_ttl=3600)
    async def shaky(n: int) -> int:
        calls.count += 1
        if calls.count == 1:
            raise RuntimeError("first run fails")
        return n

    return calls


@pytest.fixture
async def client(database_url: str, calls: Calls) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url)
    app = (
        ServiceBuilder(info=ServiceInfo(display_name="cache"), settings=settings)
        .with_tasks()
        .with_monitoring()
        .build()
    )
    async with running_client(app) as client:
        yield client


async def _submit(client: httpx.AsyncClient, task: str, **body: Any) -> httpx.Response:
    response = await client.post(f"/api/v1/tasks/{task}/$execute", json=body)
    assert response.status_code == 202, response.text
    return response


async def _run(client: httpx.AsyncClient, task: str, **body: Any) -> dict[str, Any]:
    response = await _submit(client, task, **body)
    return await wait_for_job(client, response.json()["job_id"])


async def _result(client: httpx.AsyncClient, job: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()["data"]
    return data


def test_the_key_is_the_validated_params_name_and_version(registry: type[TaskRegistry]) -> None:
    @registry.register("a", cache_ttl=10)
    def a(n: int, tags: list[str] | None = None) -> None:
        pass

    @registry.register("b", cache_ttl=10, cache_version="2")
    def b(n: int) -> None:
        pass

    @registry.register("c", cache_ttl=10, cache_key=lambda params: str(params["n"] % 2))
    def c(n: int) -> None:
        pass

    defn = registry.get_definition
    # Validated: a default left out and given are the same request.
    key = cache_key(defn("a"), defn("a").validate_params({"n": 1}))
    assert key == cache_key(defn("a"), defn("a").validate_params({"n": 1, "tags": None}))
    assert len(key) == 64
    assert key != cache_key(defn("a"), defn("a").validate_params({"n": 2}))
    assert key != cache_key(defn("b"), defn("b").validate_params({"n": 1}))
    assert cache_key(defn("c"), {"n": 1}) == cache_key(defn("c"), {"n": 3})
    assert cache_key(defn("c"), {"n": 1}) != cache_key(defn("c"), {"n": 2})


def test_cache_options_need_a_ttl(registry: type[TaskRegistry]) -> None:
    with pytest.raises(ValueError, match="need cache_ttl"):
        registry.register_function("v", lambda: None, cache_version=2)
    with pytest.raises(ValueError, match="cache_ttl"):
        registry.register_function("t", lambda: None, cache_ttl=0)
    info = registry.register_function("ok", lambda: None, cache_ttl=5, cache_version=3).info()
    assert (info.options.cache_ttl, info.options.cache_version) == (5, "3")


async def test_a_hit_reuses_the_result_and_the_task_does_not_run(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    first = await _run(client, "square", params={"n": 4})
    response = await _submit(client, "square", params={"n": 4})
    hit = (await client.get(f"/api/v1/jobs/{response.json()['job_id']}")).json()

    assert calls.count == 1
    assert response.headers["Taskexec-Cache"] == "hit"
    assert (hit["status"], hit["cached_from"], hit["attempts"]) == ("completed", first["id"], 0)
    assert hit["id"] != first["id"]
    assert hit["result"] != first["result"]
    assert await _result(client, hit) == {
        "task_name": "square",
        "params": {"n": 4},
        "result": 16,
        "error": None,
    }
    events = await events_of(client, hit["id"])
    assert [e["type"] for e in events] == ["created", "completed"]
    assert events[1]["data"]["cached_from"] == first["id"]
    # Other params are another key.
    await _run(client, "square", params={"n": 5})
    assert calls.count == 2


async def test_ten_identical_requests_at_once_run_once(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    calls.release.clear()
    responses = await asyncio.gather(
        *(_submit(client, "square", params={"n": 7}) for _ in range(10))
    )
    job_ids = {r.json()["job_id"] for r in responses}
    assert len(job_ids) == 1
    assert sorted(r.headers.get("Taskexec-Cache", "") for r in responses) == [""] + ["joined"] * 9

    calls.release.set()
    job = await wait_for_job(client, job_ids.pop())
    assert (job["status"], calls.count) == ("completed", 1)

    later = await asyncio.gather(*(_submit(client, "square", params={"n": 7}) for _ in range(10)))
    hits = [(await client.get(f"/api/v1/jobs/{r.json()['job_id']}")).json() for r in later]
    assert {h["cached_from"] for h in hits} == {job["id"]}
    assert len({h["id"] for h in hits}) == 10
    assert calls.count == 1


async def test_refresh_runs_again_and_bypass_leaves_the_cache_alone(
    client: httpx.AsyncClient, calls: Calls
) -> None:
    first = await _run(client, "square", params={"n": 3})
    refreshed = await _run(client, "square", params={"n": 3}, cache="refresh")
    bypassed = await _run(client, "square", params={"n": 3}, cache="bypass")
    hit = await _run(client, "square", params={"n": 3})

    assert calls.count == 3
    assert first["cached_from"] is refreshed["cached_from"] is bypassed["cached_from"] is None
    assert hit["cached_from"] == refreshed["id"]


async def test_failures_are_not_cached(client: httpx.AsyncClient, calls: Calls) -> None:
    failed = await _run(client, "shaky", params={"n": 1})
    second = await _run(client, "shaky", params={"n": 1})
    third = await _run(client, "shaky", params={"n": 1})

    assert failed["status"] == "failed"
    assert (second["status"], second["cached_from"]) == ("completed", None)
    assert third["cached_from"] == second["id"]
    assert calls.count == 2


async def test_an_expired_entry_runs_again(
    client: httpx.AsyncClient, calls: Calls, database: Database
) -> None:
    first = await _run(client, "square", params={"n": 2})
    async with database.transaction() as session:
        await session.execute(
            update(Job)
            .where(Job.id == first["id"])
            .values(finished_at=utcnow() - timedelta(seconds=3601))
        )
    again = await _run(client, "square", params={"n": 2})
    hit = await _run(client, "square", params={"n": 2})

    assert (again["cached_from"], calls.count) == (None, 2)
    assert hit["cached_from"] == again["id"]


async def test_forgetting_a_tasks_cache(client: httpx.AsyncClient, calls: Calls) -> None:
    await _run(client, "square", params={"n": 1})
    await _run(client, "square", params={"n": 2})

    response = await client.delete("/api/v1/tasks/square/cache")
    assert response.status_code == 200
    assert response.json() == {"task_name": "square", "forgotten": 2}
    again = await _run(client, "square", params={"n": 1})

    assert (again["cached_from"], calls.count) == (None, 3)
    assert_problem(await client.delete("/api/v1/tasks/nope/cache"), 404, "not_found")
    assert_problem(
        await client.post("/api/v1/tasks/square/$execute", json={"cache": "sometimes"}), 400
    )


async def test_hits_and_misses_are_counted(client: httpx.AsyncClient, calls: Calls) -> None:
    await _run(client, "square", params={"n": 9})
    await _run(client, "square", params={"n": 9})
    await _run(client, "square", params={"n": 9})

    metrics = (await client.get("/metrics")).text

    assert 'taskexec_cache_misses_total{task="square"} 1.0' in metrics
    assert 'taskexec_cache_hits_total{task="square"} 2.0' in metrics
