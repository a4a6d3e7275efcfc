"""`GET /api/v1/workers` and the live-worker gauge, with the service's own worker running."""

import os
import socket
from typing import Any

import httpx

from app.db.database import Database
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from tests.conftest import ClientFactory, make_settings, running_client
from tests.core.test_metrics import scrape, value
from tests.helpers import apoll_until, assert_problem
from tests.jobs.helpers import ago
from tests.workers.helpers import add_worker

BASE = "/api/v1/workers"


async def page(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(BASE, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"items", "total", "limit", "offset"}
    return body


async def wait_for_own_worker(client: httpx.AsyncClient) -> dict[str, Any]:
    async def registered() -> bool:
        total: int = (await page(client, alive="true"))["total"]
        return total == 1

    await apoll_until(registered, what="the service's worker to register")
    [own] = (await page(client, alive="true"))["items"]
    own_item: dict[str, Any] = own
    return own_item


async def test_lists_workers_newest_first_filtered_by_alive(
    client_factory: ClientFactory, database: Database
) -> None:
    await add_worker(database, "gone:1:1-a", started_at=ago(300), stopped_at=ago(200))
    await add_worker(
        database, "lost:2:1-b", started_at=ago(100), stopped_at=ago(50), stop_reason="expired"
    )
    async with client_factory(worker_timeout_seconds=30.0) as client:
        own = await wait_for_own_worker(client)
        assert (own["host"], own["pid"]) == (socket.gethostname(), os.getpid())
        assert (own["alive"], own["stopped_at"], own["stop_reason"]) == (True, None, None)
        assert own["running"] == 0
        every = await page(client)
        dead = await page(client, alive="false", limit=1)
        second = await page(client, alive="false", limit=1, offset=1)

    assert [w["id"] for w in every["items"]] == [own["id"], "lost:2:1-b", "gone:1:1-a"]
    assert every["total"] == 3
    assert [w["alive"] for w in every["items"]] == [True, False, False]
    assert (dead["total"], dead["limit"], dead["offset"]) == (2, 1, 0)
    [lost] = dead["items"]
    assert (lost["id"], lost["stop_reason"], lost["alive"]) == ("lost:2:1-b", "expired", False)
    assert [w["id"] for w in second["items"]] == ["gone:1:1-a"]


async def test_bad_filters_are_problems(client_factory: ClientFactory) -> None:
    async with client_factory() as client:
        assert_problem(await client.get(BASE, params={"alive": "maybe"}), 400)
        assert_problem(await client.get(BASE, params={"limit": 0}), 400)
        assert_problem(await client.get(BASE, params={"offset": -1}), 400)


async def test_metrics_count_live_workers(database_url: str, database: Database) -> None:
    await add_worker(database, "gone:1:1-a", stopped_at=ago(5))
    settings = make_settings(database_url, worker_timeout_seconds=30.0)
    app = (
        ServiceBuilder(info=ServiceInfo(display_name="monitored"), settings=settings)
        .with_tasks()
        .with_monitoring()
        .build()
    )
    async with running_client(app) as client:
        await wait_for_own_worker(client)
        assert value(await scrape(client), "taskexec_workers_alive") == 1
        await add_worker(database, "other:2:1-b", last_seen_at=ago(1))
        assert value(await scrape(client), "taskexec_workers_alive") == 2
