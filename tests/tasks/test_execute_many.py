"""`$execute-many`: a batch of jobs, validated all or nothing, queued in one transaction."""

from typing import Any

import httpx

from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import wait_for_job

PROBLEM_JSON = "application/problem+json"


def _register_double(registry: type[TaskRegistry]) -> None:
    async def double(x: int, label: str = "") -> str:
        return f"{label}{x * 2}"

    registry.register_function("double", double)


async def _post(client: httpx.AsyncClient, body: Any, task: str = "double") -> httpx.Response:
    return await client.post(f"/api/v1/tasks/{task}/$execute-many", json=body)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


async def _job_count(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/v1/jobs")
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


async def test_queues_one_job_per_item_in_item_order(
    client: httpx.AsyncClient, registry: type[TaskRegistry]
) -> None:
    _register_double(registry)
    items = [{"params": {"x": n}} for n in range(5)] + [
        {"params": {"x": 7, "label": "p"}, "priority": 3, "retries": 2}
    ]

    response = await _post(client, {"items": items})

    assert response.status_code == 202, response.text
    job_ids = response.json()["job_ids"]
    assert len(job_ids) == len(set(job_ids)) == 6
    for job_id, item in zip(job_ids, items, strict=True):
        job = await wait_for_job(client, job_id)
        assert job["params"] == item["params"]
        assert job["status"] == "completed"
    last = (await client.get(f"/api/v1/jobs/{job_ids[-1]}")).json()
    assert (last["priority"], last["max_attempts"]) == (3, 3)
    artifact = (await client.get(f"/api/v1/artifacts/{last['result']}")).json()
    assert artifact["data"]["result"] == "p14"


async def test_one_invalid_item_rejects_the_batch_and_names_it_by_index(
    client: httpx.AsyncClient, registry: type[TaskRegistry]
) -> None:
    _register_double(registry)
    items = [
        {"params": {"x": 1}},
        {"params": {"x": 2}},
        {"params": {"x": 3}},
        {"params": {"x": "four"}},
        {"params": {}},
    ]

    body = _problem(await _post(client, {"items": items}), 400)

    locs = [error["loc"] for error in body["errors"]]
    assert locs == [["items", "3", "params", "x"], ["items", "4", "params", "x"]]
    assert "items.3.params.x" in body["detail"]
    assert await _job_count(client) == 0


async def test_invalid_item_options_are_named_by_index(
    client: httpx.AsyncClient, registry: type[TaskRegistry]
) -> None:
    _register_double(registry)
    items = [{"params": {"x": 1}}, {"params": {"x": 2}, "priority": "high", "bogus": 1}]

    body = _problem(await _post(client, {"items": items}), 400)

    locs = {tuple(error["loc"]) for error in body["errors"]}
    assert locs == {("body", "items", "1", "priority"), ("body", "items", "1", "bogus")}
    assert await _job_count(client) == 0


async def test_batch_size_is_bounded(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_double(registry)
    async with client_factory(max_batch=3) as client:
        empty = _problem(await _post(client, {"items": []}), 400)
        too_many = _problem(await _post(client, {"items": [{"params": {"x": 1}}] * 4}), 400)
        exactly = await _post(client, {"items": [{"params": {"x": 1}}] * 3})

        assert empty["errors"][0]["loc"] == ["body", "items"]
        assert too_many["errors"] == [
            {"loc": ["body", "items"], "msg": "at most 3 items", "type": "too_long"}
        ]
        assert "TASKEXEC_MAX_BATCH" in too_many["detail"]
        assert exactly.status_code == 202, exactly.text
        assert await _job_count(client) == 3


async def test_unknown_task_and_missing_body(
    client: httpx.AsyncClient, registry: type[TaskRegistry]
) -> None:
    _register_double(registry)

    _problem(await _post(client, {"items": [{"params": {}}]}, task="nope"), 404)
    _problem(await client.post("/api/v1/tasks/double/$execute-many"), 400)
    _problem(await _post(client, {"items": [{"params": {"x": 1}}], "extra": True}), 400)
    assert await _job_count(client) == 0


async def test_per_item_idempotency_keys_replay_existing_jobs(
    client: httpx.AsyncClient, registry: type[TaskRegistry]
) -> None:
    _register_double(registry)
    single = await client.post(
        "/api/v1/tasks/double/$execute", json={"params": {"x": 1}, "idempotency_key": "k1"}
    )
    assert single.status_code == 202, single.text
    items = [
        {"params": {"x": 1}, "idempotency_key": "k1"},
        {"params": {"x": 2}, "idempotency_key": "k2"},
        {"params": {"x": 3}},
        {"params": {"x": 2}, "idempotency_key": "k2"},
    ]

    first = await _post(client, {"items": items})
    again = await _post(client, {"items": items[:2]})

    assert first.status_code == 202, first.text
    ids = first.json()["job_ids"]
    assert ids[0] == single.json()["job_id"]
    assert ids[1] == ids[3]
    assert len({ids[0], ids[1], ids[2]}) == 3
    assert again.status_code == 202, again.text
    assert again.json()["job_ids"] == ids[:2]
    assert await _job_count(client) == 3


async def test_a_reused_key_with_other_params_conflicts_and_queues_nothing(
    client: httpx.AsyncClient, registry: type[TaskRegistry]
) -> None:
    _register_double(registry)
    first = await _post(client, {"items": [{"params": {"x": 1}, "idempotency_key": "k"}]})
    assert first.status_code == 202, first.text

    conflict = await _post(
        client,
        {"items": [{"params": {"x": 5}}, {"params": {"x": 2}, "idempotency_key": "k"}]},
    )
    in_batch = await _post(
        client,
        {
            "items": [
                {"params": {"x": 5}, "idempotency_key": "j"},
                {"params": {"x": 6}, "idempotency_key": "j"},
            ]
        },
    )

    _problem(conflict, 409)
    _problem(in_batch, 409)
    assert await _job_count(client) == 1
