"""`/api/v1/schedules` over HTTP, with the service's worker and firing loop running."""

import itertools
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.core.clock import isoformat
from app.jobs.context import JobContext
from app.schedules.definition import Schedule
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import apoll_until, assert_problem, wait_for_job
from tests.jobs.test_router import UNKNOWN_ID

BASE = "/api/v1/schedules"


@pytest.fixture(autouse=True)
def tasks(registry: type[TaskRegistry]) -> None:
    @registry.register("stamp")
    def stamp(ctx: JobContext, label: str = "x") -> dict[str, Any]:
        """Returns the fire time it ran for."""
        fire = ctx.scheduled_for
        return {"label": label, "scheduled_for": None if fire is None else isoformat(fire)}

    @registry.register("nightly", schedule=Schedule(cron="0 3 * * *", timezone="Europe/Paris"))
    def nightly() -> None:
        """Defined with a schedule in code."""


@pytest.fixture
async def api(client_factory: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with client_factory() as client:
        yield client


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("task_name", "stamp")
    response = await client.post(BASE, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert response.headers["location"] == f"{BASE}/{created['id']}"
    return created


async def rest_schedules(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get(BASE, params={"limit": 100})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return [item for item in items if not item["defined_in_code"]]


async def test_create_a_cron_schedule_in_a_timezone(api: httpx.AsyncClient) -> None:
    created = await create(
        api, cron="30 7 * * 1-5", timezone="Europe/Paris", params={"label": "morning"}
    )
    assert created["task_name"] == "stamp"
    assert created["params"] == {"label": "morning"}
    assert (created["enabled"], created["catchup"], created["overlap"]) == (True, "latest", "allow")
    assert created["defined_in_code"] is False
    assert created["last_fired_at"] is None
    times = [datetime.fromisoformat(value) for value in created["next_fire_times"]]
    assert len(times) == 5
    assert times == sorted(set(times))
    assert created["next_fire_at"] == created["next_fire_times"][0]
    paris = [moment.astimezone(ZoneInfo("Europe/Paris")) for moment in times]
    assert all((m.hour, m.minute) == (7, 30) and m.isoweekday() <= 5 for m in paris)

    fetched = await api.get(f"{BASE}/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created


async def test_an_interval_schedule_lists_its_next_fire_times(api: httpx.AsyncClient) -> None:
    created = await create(api, interval_seconds=3600, catchup="all", overlap="skip")
    times = [datetime.fromisoformat(value) for value in created["next_fire_times"]]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(times)] == [3600] * 4
    assert all(moment.timestamp() % 3600 == 0 for moment in times)
    assert created["timezone"] is None
    assert (created["catchup"], created["overlap"]) == ("all", "skip")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "* * *"}, "cron"),
        ({"cron": "0 25 * * *"}, "cron"),
        ({"cron": "0 3 * * *", "timezone": "Europe/Nowhere"}, "timezone"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"cron": "* * * * *", "interval_seconds": 60}, None),
        ({}, None),
        ({"interval_seconds": 60, "timezone": "UTC"}, None),
        ({"interval_seconds": 60, "catchup": "sometimes"}, "catchup"),
        ({"interval_seconds": 60, "params": {"label": 5}}, "label"),
        ({"interval_seconds": 60, "params": {"unknown": 1}}, "unknown"),
        ({"interval_seconds": 60, "color": "red"}, "color"),
    ],
)
async def test_a_bad_schedule_is_a_400_and_nothing_is_stored(
    api: httpx.AsyncClient, body: dict[str, Any], field: str | None
) -> None:
    response = await api.post(BASE, json={"task_name": "stamp", **body})
    problem = assert_problem(response, 400)
    if field is not None:
        assert any(field in entry["loc"] for entry in problem["errors"]), problem
    assert await rest_schedules(api) == []


async def test_an_unknown_task_is_a_404(api: httpx.AsyncClient) -> None:
    response = await api.post(BASE, json={"task_name": "nope", "interval_seconds": 60})
    assert_problem(response, 404)
    assert await rest_schedules(api) == []


async def test_list_pages_and_filters_by_task(api: httpx.AsyncClient) -> None:
    ids = [(await create(api, interval_seconds=60 * (i + 1)))["id"] for i in range(3)]
    response = await api.get(BASE, params={"task": "stamp", "limit": 2})
    page = response.json()
    assert (page["total"], page["limit"]) == (3, 2)
    assert [item["id"] for item in page["items"]] == ids[::-1][:2]
    code = (await api.get(BASE, params={"task": "nightly"})).json()["items"]
    assert [item["defined_in_code"] for item in code] == [True]


async def test_pause_resume_and_change(api: httpx.AsyncClient) -> None:
    created = await create(api, interval_seconds=60)
    url = f"{BASE}/{created['id']}"

    paused = (await api.patch(url, json={"enabled": False})).json()
    assert (paused["enabled"], paused["next_fire_at"], paused["next_fire_times"]) == (
        False,
        None,
        [],
    )
    resumed = (await api.patch(url, json={"enabled": True})).json()
    assert resumed["enabled"] is True
    assert len(resumed["next_fire_times"]) == 5

    changed = await api.patch(url, json={"cron": "0 12 * * *", "timezone": "Asia/Tokyo"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["cron"], body["timezone"], body["interval_seconds"]) == (
        "0 12 * * *",
        "Asia/Tokyo",
        None,
    )
    assert datetime.fromisoformat(body["next_fire_at"]).hour == 3  # 12:00 JST is 03:00 UTC

    bad = await api.patch(url, json={"cron": "every day"})
    assert_problem(bad, 400)
    bad_params = await api.patch(url, json={"params": {"label": []}})
    assert_problem(bad_params, 400)
    assert (await api.get(url)).json()["cron"] == "0 12 * * *"

    back = (await api.patch(url, json={"interval_seconds": 30, "catchup": "skip"})).json()
    assert (back["cron"], back["timezone"], back["interval_seconds"]) == (None, None, 30)
    assert back["catchup"] == "skip"


async def test_unknown_and_malformed_ids(api: httpx.AsyncClient) -> None:
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/$trigger")):
        json = {"enabled": False} if method == "PATCH" else None
        response = await api.request(method, f"{BASE}/{UNKNOWN_ID}{suffix}", json=json)
        assert_problem(response, 404)
    assert_problem(await api.get(f"{BASE}/not-an-id"), 400)


async def test_trigger_runs_a_fire_now_and_the_task_sees_its_time(api: httpx.AsyncClient) -> None:
    created = await create(api, interval_seconds=86400, params={"label": "manual"})
    response = await api.post(f"{BASE}/{created['id']}/$trigger")
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["location"] == f"/api/v1/jobs/{accepted['job_id']}"

    job = await wait_for_job(api, accepted["job_id"])
    assert job["status"] == "completed", job
    assert (job["schedule_id"], job["scheduled_for"]) == (created["id"], accepted["scheduled_for"])
    artifact = (await api.get(f"/api/v1/artifacts/{job['result']}")).json()
    assert artifact["data"]["result"]["scheduled_for"] == accepted["scheduled_for"]
    events = (await api.get(f"/api/v1/jobs/{job['id']}/events")).json()["items"]
    assert events[0]["type"] == "created"
    assert events[0]["data"]["source"] == "trigger"
    assert events[0]["data"]["schedule_id"] == created["id"]


async def test_an_ordinary_job_has_no_fire_time(api: httpx.AsyncClient) -> None:
    job_id = (await api.post("/api/v1/tasks/stamp/$execute", json={})).json()["job_id"]
    job = await wait_for_job(api, job_id)
    assert (job["schedule_id"], job["scheduled_for"]) == (None, None)
    artifact = (await api.get(f"/api/v1/artifacts/{job['result']}")).json()
    assert artifact["data"]["result"] == {"label": "x", "scheduled_for": None}


async def test_a_schedule_fires_by_itself_as_a_normal_job(api: httpx.AsyncClient) -> None:
    created = await create(api, interval_seconds=1, params={"label": "auto"})
    found: list[dict[str, Any]] = []

    async def fired() -> bool:
        page = (await api.get("/api/v1/jobs", params={"task": "stamp"})).json()
        found[:] = page["items"]
        return bool(found)

    await apoll_until(fired, within=10, what="a fire of the schedule")
    job = await wait_for_job(api, found[-1]["id"])
    assert job["status"] == "completed"
    assert job["schedule_id"] == created["id"]
    artifact = (await api.get(f"/api/v1/artifacts/{job['result']}")).json()
    assert artifact["data"]["result"] == {"label": "auto", "scheduled_for": job["scheduled_for"]}
    assert (await api.patch(f"{BASE}/{created['id']}", json={"enabled": False})).status_code == 200


async def test_deleting_a_schedule_keeps_its_jobs(api: httpx.AsyncClient) -> None:
    created = await create(api, interval_seconds=86400)
    job_id = (await api.post(f"{BASE}/{created['id']}/$trigger")).json()["job_id"]
    deleted = await api.delete(f"{BASE}/{created['id']}")
    assert deleted.status_code == 204
    assert_problem(await api.get(f"{BASE}/{created['id']}"), 404)
    job = await wait_for_job(api, job_id)
    assert (job["status"], job["schedule_id"]) == ("completed", created["id"])


async def test_a_schedule_defined_in_code_can_only_be_paused(api: httpx.AsyncClient) -> None:
    [nightly] = (await api.get(BASE, params={"task": "nightly"})).json()["items"]
    assert (nightly["cron"], nightly["timezone"]) == ("0 3 * * *", "Europe/Paris")
    url = f"{BASE}/{nightly['id']}"
    assert_problem(await api.patch(url, json={"cron": "0 4 * * *"}), 409)
    assert_problem(await api.delete(url), 409)
    paused = await api.patch(url, json={"enabled": False})
    assert paused.status_code == 200
    assert paused.json()["enabled"] is False
