"""`$execute` refuses what cannot be stored or run, on both backends, and queues nothing:
a body that is not JSON (415), non-finite numbers and NUL characters (400), a start time
beyond the horizon or outside the date range (400)."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from app.tasks.registry import TaskRegistry
from tests.helpers import assert_problem, job_total

EXECUTE = "/api/v1/tasks/take/$execute"


@pytest.fixture(autouse=True)
def take_task(registry: type[TaskRegistry]) -> None:
    @registry.register("take")
    def take(value: Any = None, number: float = 0.0, **extra: Any) -> None:
        pass


async def test_a_text_plain_body_is_415_naming_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        EXECUTE, content=b'{"params": {}}', headers={"Content-Type": "text/plain"}
    )
    body = assert_problem(response, 415)
    assert body["code"] == "unsupported_media_type"
    assert "application/json" in body["detail"]
    assert await job_total(client) == 0


async def test_a_text_plain_batch_is_415_naming_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/tasks/take/$execute-many",
        content=b'{"items": [{"params": {}}]}',
        headers={"Content-Type": "text/plain"},
    )
    body = assert_problem(response, 415)
    assert "application/json" in body["detail"]
    assert await job_total(client) == 0


async def test_json_media_types_are_accepted(client: httpx.AsyncClient) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8"):
        response = await client.post(
            EXECUTE, content=b'{"params": {}}', headers={"Content-Type": content_type}
        )
        assert response.status_code == 202, (content_type, response.text)
    # No body at all still means no params.
    assert (await client.post(EXECUTE)).status_code == 202


@pytest.mark.parametrize(
    "raw",
    [
        b'{"params": {"value": NaN}}',
        b'{"params": {"value": Infinity}}',
        b'{"params": {"value": -Infinity}}',
        b'{"params": {"value": 1e309}}',
        b'{"params": {"number": NaN}}',
        b'{"params": {"value": [1, {"deep": Infinity}]}}',
    ],
)
async def test_non_finite_numbers_are_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(EXECUTE, content=raw, headers={"Content-Type": "application/json"})
    body = assert_problem(response, 400)
    assert "finite" in body["detail"]
    assert await job_total(client) == 0


@pytest.mark.parametrize(
    "params",
    [
        {"value": "a\u0000b"},
        {"value": {"k\u0000": 1}},
        {"x\u0000y": 1},
        {"value": ["ok", ["\u0000"]]},
    ],
)
async def test_nul_characters_are_400(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await client.post(EXECUTE, json={"params": params})
    body = assert_problem(response, 400)
    assert "NUL" in body["detail"]
    assert await job_total(client) == 0


async def test_a_nul_in_the_idempotency_key_field_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(EXECUTE, json={"idempotency_key": "a\u0000b"})
    assert_problem(response, 400)
    assert await job_total(client) == 0


@pytest.mark.parametrize(
    "options",
    [
        {"run_at": 1_800_000_000},
        {"delay": "5"},
        {"timeout": "1.5"},
        {"delay": True},
    ],
)
async def test_start_and_timeout_options_take_only_their_json_types(
    client: httpx.AsyncClient, options: dict[str, Any]
) -> None:
    # A number is not a date-time and a string is not a number, whatever they could be read as.
    response = await client.post(EXECUTE, json={"params": {}, **options})
    body = assert_problem(response, 400)
    assert [error["loc"][-1] for error in body["errors"]] == list(options)
    assert await job_total(client) == 0


@pytest.mark.parametrize(
    "run_at",
    [
        "9999-12-31T23:00:00-14:00",
        "0001-01-01T00:30:00+14:00",
        "9999-01-01T00:00:00+00:00",
    ],
)
async def test_run_at_out_of_range_is_400(client: httpx.AsyncClient, run_at: str) -> None:
    response = await client.post(EXECUTE, json={"run_at": run_at})
    body = assert_problem(response, 400)
    assert "run_at" in body["detail"]
    assert await job_total(client) == 0


async def test_run_at_has_the_same_horizon_as_delay(client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    beyond = (now + timedelta(days=367)).isoformat()
    within = (now + timedelta(days=365)).astimezone(timezone(timedelta(hours=-14))).isoformat()
    assert_problem(await client.post(EXECUTE, json={"run_at": beyond}), 400)
    assert_problem(await client.post(EXECUTE, json={"delay": 367 * 86400}), 400)
    accepted = await client.post(EXECUTE, json={"run_at": within})
    assert accepted.status_code == 202, accepted.text
    job = (await client.get(accepted.headers["location"])).json()
    assert datetime.fromisoformat(job["run_at"]) == datetime.fromisoformat(within)


async def test_a_run_at_in_the_past_far_off_the_edge_still_runs_now(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(EXECUTE, json={"run_at": "2000-01-01T00:00:00-14:00"})
    assert response.status_code == 202, response.text
