"""`$execute` execution controls: task defaults, per-request overrides, validation, idempotency."""

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import assert_problem, wait_for_job

PROBLEM_JSON = "application/problem+json"


def _register_echo(registry: type[TaskRegistry], **options: Any) -> None:
    async def echo(word: str = "hi") -> str:
        return word

    registry.register_function("echo", echo, **options)


async def _post(
    client: httpx.AsyncClient,
    body: Any,
    *,
    task: str = "echo",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(f"/api/v1/tasks/{task}/$execute", json=body, headers=headers)


async def _accepted(client: httpx.AsyncClient, body: Any, **kwargs: Any) -> dict[str, Any]:
    """Submit; assert 202 and return the job as GET shows it."""
    response = await _post(client, body, **kwargs)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    job = await client.get(f"/api/v1/jobs/{job_id}")
    assert job.status_code == 200, job.text
    data: dict[str, Any] = job.json()
    return data


async def _job_total(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/v1/jobs")
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# Task defaults and overrides ------------------------------------------------------------------


async def test_task_options_are_the_defaults_of_its_jobs(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry, priority=3, timeout=7.5, retries=2, description="Says a word.")
    async with client_factory(run_worker=False) as client:
        info = (await client.get("/api/v1/tasks/echo")).json()
        assert info["options"]["priority"] == 3
        assert info["options"]["timeout"] == 7.5
        assert info["options"]["retries"] == 2
        assert info["options"]["description"] == "Says a word."

        job = await _accepted(client, {"params": {"word": "x"}})

    assert job["status"] == "pending"
    assert job["priority"] == 3
    assert job["timeout"] == 7.5
    assert job["max_attempts"] == 3
    assert job["run_at"] == job["created_at"]
    assert job["idempotency_key"] is None


async def test_request_options_override_the_task_defaults(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry, priority=3, timeout=7.5, retries=2)
    body = {"params": {}, "priority": -4, "timeout": 0.5, "retries": 0, "delay": 30}
    async with client_factory(run_worker=False) as client:
        job = await _accepted(client, body)

    assert job["priority"] == -4
    assert job["timeout"] == 0.5
    assert job["max_attempts"] == 1
    assert _at(job["run_at"]) - _at(job["created_at"]) == timedelta(seconds=30)


async def test_more_retries_than_the_task_default(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)
    async with client_factory(run_worker=False) as client:
        job = await _accepted(client, {"retries": 4})
    assert job["max_attempts"] == 5
    assert job["params"] == {}


async def test_run_at_is_kept_as_the_same_instant_in_utc(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)
    plus_two = timezone(timedelta(hours=2))
    run_at = (datetime.now(UTC) + timedelta(hours=1)).astimezone(plus_two)
    async with client_factory(run_worker=False) as client:
        job = await _accepted(client, {"run_at": run_at.isoformat()})
    assert _at(job["run_at"]) == run_at
    assert job["run_at"].endswith("+00:00")


async def test_an_empty_body_takes_every_default(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry, priority=1)
    async with client_factory(run_worker=False) as client:
        response = await client.post("/api/v1/tasks/echo/$execute")
        assert response.status_code == 202, response.text
        job = (await client.get(f"/api/v1/jobs/{response.json()['job_id']}")).json()
    assert (job["params"], job["priority"], job["max_attempts"]) == ({}, 1, 1)


# Validation: nothing invalid is queued --------------------------------------------------------

NAIVE_RUN_AT = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
AWARE_RUN_AT = (datetime.now(UTC) + timedelta(hours=1)).isoformat()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"params": {}, "prio": 1}, "prio"),
        ({"word": "hi"}, "word"),
        ({"delay": 1, "run_at": AWARE_RUN_AT}, "either delay or run_at"),
        ({"run_at": NAIVE_RUN_AT}, "run_at"),
        ({"run_at": "tomorrow"}, "run_at"),
        ({"delay": -1}, "delay"),
        ({"delay": "soon"}, "delay"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -2.5}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retries": 101}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"priority": "high"}, "priority"),
        ({"priority": 10**7}, "priority"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "k" * 201}, "idempotency_key"),
        ({"params": ["hi"]}, "params"),
    ],
)
async def test_invalid_options_are_a_bad_request_and_queue_nothing(
    client_factory: ClientFactory, registry: type[TaskRegistry], body: dict[str, Any], field: str
) -> None:
    _register_echo(registry)
    async with client_factory(run_worker=False) as client:
        problem = assert_problem(await _post(client, body), 400)
        assert field in problem["detail"]
        assert await _job_total(client) == 0


async def test_delay_and_run_at_together_is_rejected_even_when_one_is_zero(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)
    async with client_factory(run_worker=False) as client:
        assert_problem(await _post(client, {"delay": 0, "run_at": AWARE_RUN_AT}), 400)
        assert await _job_total(client) == 0


async def test_bad_params_next_to_valid_options_queue_nothing(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)
    async with client_factory(run_worker=False) as client:
        body = {"params": {"word": 5, "extra": 1}, "priority": 2, "idempotency_key": "k1"}
        problem = assert_problem(await _post(client, body), 400)
        assert len(problem["errors"]) == 2
        assert await _job_total(client) == 0
        # The key was not used up by the rejected request.
        job = await _accepted(client, {"params": {"word": "ok"}, "idempotency_key": "k1"})
        assert job["idempotency_key"] == "k1"


async def test_an_over_long_idempotency_header_is_rejected(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)
    async with client_factory(run_worker=False) as client:
        response = await _post(client, None, headers={"Idempotency-Key": "k" * 201})
        assert_problem(response, 400)
        assert await _job_total(client) == 0


# Idempotency ----------------------------------------------------------------------------------


async def test_idempotency_header_replays_the_same_job(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)
    headers = {"Idempotency-Key": "order-42"}
    body = {"params": {"word": "once"}}
    async with client_factory() as client:
        first = await _post(client, body, headers=headers)
        assert first.status_code == 202, first.text
        assert "idempotent-replayed" not in first.headers
        job_id = first.json()["job_id"]
        finished = await wait_for_job(client, job_id)
        assert finished["status"] == "completed"

        again = await _post(client, body, headers=headers)
        assert again.status_code == 202, again.text
        assert again.json()["job_id"] == job_id
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["location"] == f"/api/v1/jobs/{job_id}"

        assert await _job_total(client) == 1
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()
        assert job["idempotency_key"] == "order-42"
        assert job["attempts"] == 1


async def test_idempotency_key_with_other_params_conflicts(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)

    async def other(word: str = "hi") -> str:
        return word

    registry.register_function("other", other)
    headers = {"Idempotency-Key": "k"}
    async with client_factory(run_worker=False) as client:
        await _accepted(client, {"params": {"word": "a"}}, headers=headers)
        problem = assert_problem(
            await _post(client, {"params": {"word": "b"}}, headers=headers), 409
        )
        assert "'k'" in problem["detail"]
        # The same params for another task are a different request too.
        assert_problem(
            await _post(client, {"params": {"word": "a"}}, task="other", headers=headers), 409
        )
        assert await _job_total(client) == 1


async def test_idempotency_key_in_the_body_works_like_the_header(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)
    async with client_factory(run_worker=False) as client:
        first = await _post(client, {"params": {"word": "a"}, "idempotency_key": "body-key"})
        assert first.status_code == 202, first.text
        job_id = first.json()["job_id"]

        by_field = await _post(client, {"params": {"word": "a"}, "idempotency_key": "body-key"})
        by_header = await _post(
            client, {"params": {"word": "a"}}, headers={"Idempotency-Key": "body-key"}
        )
        for response in (by_field, by_header):
            assert response.status_code == 202, response.text
            assert response.json()["job_id"] == job_id
            assert response.headers["idempotent-replayed"] == "true"

        conflict = await _post(client, {"params": {"word": "b"}, "idempotency_key": "body-key"})
        assert_problem(conflict, 409)
        assert await _job_total(client) == 1


async def test_header_and_field_that_agree_are_one_key(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)
    async with client_factory(run_worker=False) as client:
        job = await _accepted(
            client, {"idempotency_key": "same"}, headers={"Idempotency-Key": "same"}
        )
    assert job["idempotency_key"] == "same"


async def test_header_and_field_that_differ_are_a_bad_request(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)
    async with client_factory(run_worker=False) as client:
        response = await _post(
            client, {"idempotency_key": "field"}, headers={"Idempotency-Key": "header"}
        )
        problem = assert_problem(response, 400)
        assert "differ" in problem["detail"]
        assert await _job_total(client) == 0


async def test_concurrent_requests_with_one_key_make_one_job(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)
    headers = {"Idempotency-Key": "race"}
    async with client_factory(run_worker=False) as client:
        responses = await asyncio.gather(
            *(_post(client, {"params": {"word": "w"}}, headers=headers) for _ in range(20))
        )
        assert [r.status_code for r in responses] == [202] * 20
        assert len({r.json()["job_id"] for r in responses}) == 1
        fresh = [r for r in responses if "idempotent-replayed" not in r.headers]
        assert len(fresh) == 1
        assert await _job_total(client) == 1


async def test_key_is_free_again_once_its_job_is_deleted(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    _register_echo(registry)
    headers = {"Idempotency-Key": "reusable"}
    async with client_factory() as client:
        first = (await _post(client, {"params": {"word": "a"}}, headers=headers)).json()["job_id"]
        assert (await wait_for_job(client, first))["status"] == "completed"
        deleted = await client.delete(f"/api/v1/jobs/{first}")
        assert deleted.status_code == 204, deleted.text

        # Other params are fine now: the key names no job.
        second = await _post(client, {"params": {"word": "b"}}, headers=headers)
        assert second.status_code == 202, second.text
        assert "idempotent-replayed" not in second.headers
        second_id = second.json()["job_id"]
        assert second_id != first
        job = await wait_for_job(client, second_id)
        assert job["status"] == "completed"
        assert job["params"] == {"word": "b"}
        assert await _job_total(client) == 1
