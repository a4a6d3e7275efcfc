"""The schedules page and its actions over HTTP (in process), and the jobs list's flow and
schedule filters."""

import httpx
import pytest

from tests.helpers import wait_for_job
from tests.ui.helpers import token

ACTIONS = ("pause", "resume", "trigger", "delete")


async def make_schedule(client: httpx.AsyncClient, **timing: object) -> str:
    body = {"task_name": "add", "params": {"a": 2}, **(timing or {"interval_seconds": 3600})}
    response = await client.post("/api/v1/schedules", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_the_page_lists_schedules_and_acts_on_them(client: httpx.AsyncClient) -> None:
    schedule_id = await make_schedule(client)
    csrf = await token(client, "/ui/schedules")
    headers = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    page = (await client.get("/ui/schedules")).text
    assert f'id="schedule-{schedule_id}"' in page
    assert "every 1.0 h" in page
    assert 'aria-current="page">Schedules' in page

    paused = await client.post(f"/ui/schedules/{schedule_id}/pause", headers=headers)
    assert (paused.status_code, paused.headers["hx-redirect"]) == (204, "/ui/schedules")
    assert (await client.get(f"/api/v1/schedules/{schedule_id}")).json()["enabled"] is False
    assert ">paused<" in (await client.get("/ui/schedules")).text
    resumed = await client.post(
        f"/ui/schedules/{schedule_id}/resume",
        headers={**headers, "HX-Current-URL": "http://test/ui/schedules?task=add"},
    )
    assert resumed.headers["hx-redirect"] == "/ui/schedules?task=add"
    assert (await client.get(f"/api/v1/schedules/{schedule_id}")).json()["enabled"] is True

    fired = await client.post(f"/ui/schedules/{schedule_id}/trigger", headers=headers)
    assert fired.status_code == 204
    jobs = (await client.get("/api/v1/jobs")).json()["items"]
    assert len(jobs) == 1
    await wait_for_job(client, jobs[0]["id"])
    page = (await client.get("/ui/schedules")).text
    assert f'href="/ui/jobs/{jobs[0]["id"]}"' in page
    made = (await client.get(f"/ui/jobs?schedule={schedule_id.lower()}")).text
    assert made.count("data-job-id=") == 1
    assert f'data-job-id="{jobs[0]["id"]}"' in made
    assert (await client.get(f"/ui/jobs?schedule={'0' * 26}")).text.count("data-job-id=") == 0

    deleted = await client.post(f"/ui/schedules/{schedule_id}/delete", headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(f"/api/v1/schedules/{schedule_id}")).status_code == 404
    missing = await client.post(f"/ui/schedules/{schedule_id}/pause", headers=headers)
    assert missing.status_code == 404


@pytest.mark.parametrize("action", ACTIONS)
async def test_schedule_actions_need_the_csrf_token(client: httpx.AsyncClient, action: str) -> None:
    schedule_id = await make_schedule(client)
    await token(client, "/ui/schedules")

    missing = await client.post(f"/ui/schedules/{schedule_id}/{action}")
    forged = await client.post(
        f"/ui/schedules/{schedule_id}/{action}", data={"csrf_token": "0" * 64}
    )

    for response in (missing, forged):
        assert response.status_code == 403
        assert response.json()["code"] == "csrf_failed"
    after = (await client.get(f"/api/v1/schedules/{schedule_id}")).json()
    assert after["enabled"] is True
    assert (await client.get("/api/v1/jobs")).json()["total"] == 0


async def test_the_redirect_stays_on_the_schedules_page(client: httpx.AsyncClient) -> None:
    schedule_id = await make_schedule(client)
    headers = {"X-CSRF-Token": await token(client, "/ui/schedules"), "HX-Request": "true"}

    for current in ("https://evil.example/", "http://test/ui/jobs", "http://test/ui/schedulesX"):
        response = await client.post(
            f"/ui/schedules/{schedule_id}/pause", headers={**headers, "HX-Current-URL": current}
        )
        assert response.headers["hx-redirect"] == "/ui/schedules"


@pytest.mark.parametrize(
    "query",
    [
        "/ui/jobs?parent=nope",
        "/ui/jobs?root=01ARZ3NDEKTSV4RRFFQ69G5FA",
        "/ui/jobs?schedule=x",
        "/ui/schedules?offset=-1",
        "/ui/schedules?task=bad%20name",
    ],
)
async def test_bad_flow_and_schedule_filters_are_400(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(query)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_schedules_live_region_answers_with_its_rows_only(client: httpx.AsyncClient) -> None:
    await make_schedule(client)
    await make_schedule(client, cron="0 3 * * *", timezone="Europe/Paris")

    rows = await client.get(
        "/ui/schedules", headers={"HX-Request": "true", "HX-Target": "schedule-rows"}
    )

    assert rows.text.lstrip().startswith('<tbody id="schedule-rows"')
    assert "<html" not in rows.text
    assert rows.text.count("data-schedule-id=") == 2
    assert "Europe/Paris" in rows.text
