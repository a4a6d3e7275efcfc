"""`/api/v1/artifacts` over HTTP: pages, the job filter, and the run record."""

import re
from datetime import datetime
from typing import Any

import httpx
import pytest

from app.artifacts.manager import ArtifactManager
from app.core.clock import ULID_PATTERN
from app.db.database import Database
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import assert_problem, run_to_end

UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
RUN_RECORD_KEYS = {"task_name", "params", "result", "error"}


def _register(registry: type[TaskRegistry]) -> None:
    @registry.register("add")
    def add(a: int, b: int = 1) -> dict[str, int]:
        return {"sum": a + b}

    @registry.register("fail")
    async def fail(why: str) -> None:
        raise RuntimeError(why)

    @registry.register("opaque")
    def opaque() -> object:
        return object()


async def _artifact(client: httpx.AsyncClient, artifact_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/artifacts/{artifact_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# The run record -----------------------------------------------------------------------------


async def test_successful_run_record(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    _register(registry)

    job = await run_to_end(client, "add", {"a": 2})
    artifact = await _artifact(client, job["result"])

    assert set(artifact) == {
        "id",
        "job_id",
        "name",
        "kind",
        "description",
        "parent_id",
        "level",
        "data",
        "created_at",
    }
    assert (artifact["name"], artifact["kind"], artifact["level"]) == ("result", "json", 0)
    assert artifact["parent_id"] is None
    assert artifact["id"] == job["result"]
    assert artifact["job_id"] == job["id"]
    assert artifact["data"] == {
        "task_name": "add",
        "params": {"a": 2},
        "result": {"sum": 3},
        "error": None,
    }
    created = datetime.fromisoformat(artifact["created_at"])
    assert created.utcoffset() is not None
    assert artifact["created_at"].endswith("+00:00")


async def test_failed_run_record(registry: type[TaskRegistry], client: httpx.AsyncClient) -> None:
    _register(registry)

    job = await run_to_end(client, "fail", {"why": "no reason"})
    artifact = await _artifact(client, job["result"])

    assert job["status"] == "failed"
    data = artifact["data"]
    assert set(data) == RUN_RECORD_KEYS
    assert data["task_name"] == "fail"
    assert data["params"] == {"why": "no reason"}
    assert data["result"] is None
    assert set(data["error"]) == {"type", "message", "traceback"}
    assert data["error"]["type"] == "RuntimeError"
    assert data["error"]["message"] == "no reason"
    assert "RuntimeError: no reason" in data["error"]["traceback"]


async def test_result_that_is_not_json_fails_clearly(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    _register(registry)

    job = await run_to_end(client, "opaque")
    artifact = await _artifact(client, job["result"])

    assert job["status"] == "failed"
    assert set(artifact["data"]) == RUN_RECORD_KEYS
    assert artifact["data"]["result"] is None
    assert "JSON" in artifact["data"]["error"]["message"]
    assert job["error"]["message"] == artifact["data"]["error"]["message"]


async def test_get_by_lowercase_id(registry: type[TaskRegistry], client: httpx.AsyncClient) -> None:
    _register(registry)
    job = await run_to_end(client, "add", {"a": 1})

    response = await client.get(f"/api/v1/artifacts/{job['result'].lower()}")

    assert response.status_code == 200
    assert response.json()["id"] == job["result"]


# Single artifact errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-an-id",
        "123",
        UNKNOWN_ID[:-1],
        UNKNOWN_ID + "A",
        "01ARZ3NDEKTSV4RRFFQ69G5FAU",  # U is not in the ULID alphabet
        "01ARZ3NDEKTSV4RRFFQ69G5FA!",
    ],
)
async def test_get_bad_id_is_400(client: httpx.AsyncClient, bad_id: str) -> None:
    response = await client.get(f"/api/v1/artifacts/{bad_id}")

    assert_problem(response, 400, "validation_error")


async def test_get_unknown_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/artifacts/{UNKNOWN_ID}")

    assert_problem(response, 404, "not_found")
    assert UNKNOWN_ID in response.json()["detail"]


# Lists --------------------------------------------------------------------------------------


async def test_empty_list_is_a_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/artifacts")

    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


async def test_list_is_paginated_newest_first(
    client: httpx.AsyncClient, database: Database
) -> None:
    manager = ArtifactManager(database)
    ids = [(await manager.save({"n": n})).id for n in range(7)]
    newest_first = list(reversed(ids))

    full = (await client.get("/api/v1/artifacts")).json()
    page_1 = (await client.get("/api/v1/artifacts", params={"limit": 3})).json()
    page_2 = (await client.get("/api/v1/artifacts", params={"limit": 3, "offset": 3})).json()
    page_3 = (await client.get("/api/v1/artifacts", params={"limit": 3, "offset": 6})).json()
    past = (await client.get("/api/v1/artifacts", params={"limit": 3, "offset": 70})).json()

    assert [item["id"] for item in full["items"]] == newest_first
    assert full["total"] == 7
    assert (page_1["limit"], page_1["offset"], page_1["total"]) == (3, 0, 7)
    assert (page_2["limit"], page_2["offset"], page_2["total"]) == (3, 3, 7)
    assert [i["id"] for i in page_1["items"] + page_2["items"] + page_3["items"]] == newest_first
    assert len(page_3["items"]) == 1
    assert past["items"] == []
    assert past["total"] == 7
    assert full["items"][0]["data"] == {"n": 6}
    assert full["items"][0]["job_id"] is None


async def test_list_filters_by_job_id(
    registry: type[TaskRegistry], client: httpx.AsyncClient, database: Database
) -> None:
    _register(registry)
    first = await run_to_end(client, "add", {"a": 1})
    second = await run_to_end(client, "add", {"a": 10})
    extra = await ArtifactManager(database).save({"extra": True}, job_id=first["id"])
    await ArtifactManager(database).save({"loose": True})

    of_first = (await client.get("/api/v1/artifacts", params={"job_id": first["id"]})).json()
    of_second = (
        await client.get("/api/v1/artifacts", params={"job_id": second["id"].lower()})
    ).json()
    of_unknown = (await client.get("/api/v1/artifacts", params={"job_id": UNKNOWN_ID})).json()
    everything = (await client.get("/api/v1/artifacts")).json()

    assert [i["id"] for i in of_first["items"]] == [extra.id, first["result"]]
    assert of_first["total"] == 2
    assert all(i["job_id"] == first["id"] for i in of_first["items"])
    assert [i["id"] for i in of_second["items"]] == [second["result"]]
    assert of_second["items"][0]["data"]["result"] == {"sum": 11}
    assert of_second["total"] == 1
    assert of_unknown == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert everything["total"] == 4


async def test_list_with_bad_job_id_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/artifacts", params={"job_id": "nope"})

    assert_problem(response, 400, "validation_error")


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": -1}, {"limit": "ten"}, {"offset": -1}, {"offset": "x"}]
)
async def test_list_with_bad_paging_is_400(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await client.get("/api/v1/artifacts", params=params)

    assert_problem(response, 400, "validation_error")


async def test_limit_is_capped(client_factory: ClientFactory, database: Database) -> None:
    manager = ArtifactManager(database)
    for n in range(5):
        await manager.save({"n": n})

    async with client_factory(page_limit_max=3, page_limit_default=2) as client:
        default = (await client.get("/api/v1/artifacts")).json()
        capped = (await client.get("/api/v1/artifacts", params={"limit": 1000})).json()
        small = (await client.get("/api/v1/artifacts", params={"limit": 1})).json()

    assert default["limit"] == 2
    assert len(default["items"]) == 2
    assert capped["limit"] == 3
    assert len(capped["items"]) == 3
    assert capped["total"] == 5
    assert small["limit"] == 1
    assert len(small["items"]) == 1


async def test_default_cap_is_page_limit_max(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/artifacts", params={"limit": 10**6})

    assert response.status_code == 200
    assert response.json()["limit"] == 500


async def test_item_ids_are_ulids(registry: type[TaskRegistry], client: httpx.AsyncClient) -> None:
    _register(registry)
    await run_to_end(client, "add", {"a": 5})

    items = (await client.get("/api/v1/artifacts")).json()["items"]

    assert len(items) == 1
    assert re.match(ULID_PATTERN, items[0]["id"])
    assert re.match(ULID_PATTERN, items[0]["job_id"])
