"""The dashboard over HTTP (in process): pages, fragments, the stream, actions, auth, CSRF."""

import re

import httpx
import pytest
from fastapi import APIRouter

from app.jobs.context import JobContext
from app.main import create_app
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry
from tests.conftest import make_settings, running_client
from tests.helpers import TERMINAL_STATUSES, get_json, run_to_end, wait_for_job
from tests.ui.helpers import UiClient, token

KEY = "dashboard-test-key"


async def test_ui_off_means_404(ui_client: UiClient) -> None:
    async with ui_client(ui=False) as client:
        for path in ("/ui", "/ui/jobs", "/ui/tasks", "/ui/login", "/ui/static/htmx.min.js", "/"):
            assert (await client.get(path)).status_code == 404, path


async def test_every_page_answers_html_and_sets_a_strict_session_cookie(
    client: httpx.AsyncClient,
) -> None:
    job_id = (await run_to_end(client, "add", {"a": 1}))["id"]
    home = await client.get("/")
    assert (home.status_code, home.headers["location"]) == (307, "/ui")

    cookies = []
    for path in ("/ui", "/ui/jobs", f"/ui/jobs/{job_id}", "/ui/tasks", "/ui/tasks/add"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-store"
        cookies += response.headers.get_list("set-cookie")
    # Made once, on the first page, and kept.
    assert len(cookies) == 1
    assert "HttpOnly" in cookies[0]
    assert "samesite=strict" in cookies[0].lower()
    assert "Path=/ui" in cookies[0]


async def test_vendored_assets_are_served_with_their_licences(client: httpx.AsyncClient) -> None:
    htmx = await client.get("/ui/static/htmx.min.js")
    sse = await client.get("/ui/static/sse.min.js")
    css = await client.get("/ui/static/app.css")

    assert htmx.status_code == sse.status_code == css.status_code == 200
    assert htmx.headers["content-type"].startswith("text/javascript")
    assert htmx.text.startswith("/*! htmx.org 2.0.11")
    assert "Zero-Clause BSD" in htmx.text
    assert sse.text.startswith("/*! htmx-ext-sse 2.2.4")
    assert "BSD Zero Clause" in sse.text
    assert css.headers["content-type"].startswith("text/css")
    assert (await client.get("/ui/static/nope.js")).status_code == 404
    page = (await client.get("/ui")).text
    assert "http://" not in page
    assert "https://" not in page


async def test_live_regions_answer_with_their_fragment_only(client: httpx.AsyncClient) -> None:
    await run_to_end(client, "add", {"a": 1})
    rows = await client.get(
        "/ui/jobs?task=add", headers={"HX-Request": "true", "HX-Target": "job-rows"}
    )
    overview = await client.get("/ui", headers={"HX-Request": "true", "HX-Target": "overview-live"})

    assert rows.text.lstrip().startswith('<tbody id="job-rows"')
    assert "<html" not in rows.text
    assert rows.text.count("data-job-id=") == 1
    assert overview.text.lstrip().startswith('<div id="overview-live"')


@pytest.mark.parametrize(
    "query",
    ["status=bogus", "before=not-an-id", "from=yesterday", "limit=0", "limit=201"],
)
async def test_bad_list_filters_are_400(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/ui/jobs?{query}")

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


async def test_unknown_job_and_task_are_404_pages(client: httpx.AsyncClient) -> None:
    job = await client.get("/ui/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV")
    task = await client.get("/ui/tasks/missing")

    assert job.status_code == task.status_code == 404
    assert "No such job" in job.text
    assert "Unknown task" in task.text
    assert (await client.get("/ui/jobs/not-an-id")).status_code == 400


async def test_tracebacks_hide_server_paths_unless_configured(ui_client: UiClient) -> None:
    for expose in (False, True):
        async with ui_client(expose_traceback_paths=expose) as client:
            job = await run_to_end(client, "fail")
            html = (await client.get(f"/ui/jobs/{job['id']}")).text
            assert "ValueError" in html
            assert "nope" in html
            assert ("File &#34;/" in html) is expose


async def test_the_stream_renders_each_event_and_ends(client: httpx.AsyncClient) -> None:
    job = await run_to_end(client, "add", {"a": 2})

    response = await client.get(f"/ui/jobs/{job['id']}/stream")
    events = re.findall(r"^event: (\w+)$", response.text, flags=re.M)
    ids = re.findall(r"^id: (\d+)$", response.text, flags=re.M)

    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "end"
    assert events.count("timeline") == 3  # created, started, completed
    assert "status" in events
    assert "s-completed" in response.text
    assert ids == sorted(ids, key=int)
    resumed = await client.get(f"/ui/jobs/{job['id']}/stream", headers={"Last-Event-ID": ids[-1]})
    assert re.findall(r"^event: (\w+)$", resumed.text, flags=re.M) == ["end"]


async def test_the_stream_turns_child_events_into_flow_panel_reloads(
    ui_client: UiClient, registry: type[TaskRegistry]
) -> None:
    @registry.register("square")
    def square(n: int) -> int:
        return n * n

    @registry.register("squares")
    async def squares(count: int, ctx: JobContext) -> int:
        return sum(await ctx.gather(*ctx.map("square", [{"n": n} for n in range(count)])))

    async with ui_client() as client:
        job = await run_to_end(client, "squares", {"count": 3})
        assert (job["status"], job["result"] is not None) == ("completed", True)
        recorded = await get_json(client, f"/api/v1/jobs/{job['id']}/events", limit=100)
        response = await client.get(f"/ui/jobs/{job['id']}/stream")

    types = [event["type"] for event in recorded["items"]]
    child_events = [t for t in types if t in ("child_started", "child_finished")]
    events = re.findall(r"^event: (\w+)$", response.text, flags=re.M)
    assert len(child_events) == 6  # three children, each started and finished
    assert events.count("flow") == len(child_events)
    assert events.count("timeline") == len(types) - len(child_events)
    assert "child_started" not in response.text
    assert "child_finished" not in response.text


async def test_run_form_queues_a_job_and_opens_it(client: httpx.AsyncClient) -> None:
    csrf = await token(client)

    plain = await client.post("/ui/tasks/add/run", data={"csrf_token": csrf, "a": "4", "b": "5"})
    assert plain.status_code == 303
    job_id = plain.headers["location"].rsplit("/", 1)[1]
    assert (await wait_for_job(client, job_id))["params"] == {"a": 4, "b": 5}

    htmx = await client.post(
        "/ui/tasks/add/run",
        data={"a": "1"},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )
    assert htmx.status_code == 204
    assert htmx.headers["hx-redirect"].startswith("/ui/jobs/")


async def test_bad_params_come_back_as_form_errors_and_nothing_is_queued(
    client: httpx.AsyncClient,
) -> None:
    csrf = await token(client)

    response = await client.post("/ui/tasks/add/run", data={"csrf_token": csrf, "a": "x"})

    assert response.status_code == 400
    assert 'id="run-errors"' in response.text
    assert "valid integer" in response.text
    assert (await client.get("/api/v1/jobs")).json()["total"] == 0


@pytest.mark.parametrize(
    "path", ["/ui/tasks/add/run", "/ui/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel"]
)
async def test_actions_need_the_csrf_token_of_the_session(
    client: httpx.AsyncClient, path: str
) -> None:
    csrf = await token(client)

    missing = await client.post(path, data={"a": "1"})
    forged = await client.post(path, data={"a": "1", "csrf_token": "0" * 64})
    cross_site = await client.post(
        path, data={"a": "1", "csrf_token": csrf}, headers={"Origin": "https://evil.example"}
    )

    for response in (missing, forged, cross_site):
        assert response.status_code == 403
        assert response.json()["code"] == "csrf_failed"
    assert (await client.get("/api/v1/jobs")).json()["total"] == 0


async def test_cancel_run_again_and_delete(client: httpx.AsyncClient) -> None:
    csrf = await token(client)
    done = await run_to_end(client, "add", {"a": 3})
    headers = {"X-CSRF-Token": csrf, "HX-Request": "true"}

    refused = await client.post(f"/ui/jobs/{done['id']}/cancel", headers=headers)
    assert refused.status_code == 409
    again = await client.post(f"/ui/jobs/{done['id']}/rerun", headers=headers)
    new_id = again.headers["hx-redirect"].rsplit("/", 1)[1]
    assert new_id != done["id"]
    rerun = await wait_for_job(client, new_id)
    assert (rerun["task_name"], rerun["params"]) == ("add", {"a": 3})
    assert rerun["status"] in TERMINAL_STATUSES

    deleted = await client.post(f"/ui/jobs/{done['id']}/delete", headers=headers)
    assert (deleted.status_code, deleted.headers["hx-redirect"]) == (204, "/ui/jobs")
    assert (await client.get(f"/api/v1/jobs/{done['id']}")).status_code == 404


async def test_with_keys_nothing_is_reachable_before_logging_in(ui_client: UiClient) -> None:
    async with ui_client(api_keys=[KEY]) as client:
        for path in ("/ui", "/ui/jobs", "/ui/tasks/add", "/ui/static/htmx.min.js"):
            response = await client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/ui/login?next=")
        htmx = await client.get("/ui/jobs", headers={"HX-Request": "true"})
        assert htmx.status_code == 401
        assert htmx.headers["hx-redirect"].startswith("/ui/login")
        run = await client.post("/ui/tasks/add/run", data={"a": "1"})
        assert run.status_code == 303
        login = await client.get("/ui/login")
        assert login.status_code == 200
        assert 'type="password"' in login.text
        assert "<style>" in login.text
        assert "/ui/static/" not in login.text


async def test_logging_in_with_a_key_opens_the_dashboard_not_the_api(
    ui_client: UiClient,
) -> None:
    async with ui_client(api_keys=[KEY]) as client:
        wrong = await client.post("/ui/login", data={"key": "wrong", "next": "/ui/tasks"})
        assert wrong.status_code == 401
        assert "not valid" in wrong.text

        right = await client.post("/ui/login", data={"key": KEY, "next": "/ui/tasks"})
        assert (right.status_code, right.headers["location"]) == (303, "/ui/tasks")
        assert "HttpOnly" in right.headers["set-cookie"]
        assert (await client.get("/ui/tasks")).status_code == 200

        # The session opens the dashboard's actions, not the API.
        csrf = await token(client)
        run = await client.post("/ui/tasks/add/run", data={"csrf_token": csrf, "a": "1"})
        assert run.status_code == 303
        assert (await client.get("/api/v1/jobs")).status_code == 401

        out = await client.post("/ui/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
        assert (await client.get("/ui")).status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/api/v1/jobs"])
async def test_login_never_redirects_off_the_dashboard(ui_client: UiClient, target: str) -> None:
    async with ui_client(api_keys=[KEY]) as client:
        response = await client.post("/ui/login", data={"key": KEY, "next": target})

    assert response.headers["location"] == "/ui"


async def test_a_configured_secret_keeps_sessions_across_restarts(ui_client: UiClient) -> None:
    secret = "s" * 32
    async with ui_client(api_keys=[KEY], ui_secret=secret) as client:
        await client.post("/ui/login", data={"key": KEY})
        cookie = client.cookies["taskexec_ui"]

    async with ui_client(api_keys=[KEY], ui_secret=secret) as client:
        client.cookies.set("taskexec_ui", cookie, path="/ui")
        assert (await client.get("/ui")).status_code == 200
    async with ui_client(api_keys=[KEY]) as client:
        client.cookies.set("taskexec_ui", cookie, path="/ui")
        assert (await client.get("/ui")).status_code == 303


async def test_create_app_serves_the_dashboard_unless_turned_off(
    sqlite_database_url: str,
) -> None:
    for enabled, status in ((True, 200), (False, 404)):
        app = create_app(make_settings(sqlite_database_url, ui=enabled))
        async with running_client(app) as client:
            assert (await client.get("/ui/tasks")).status_code == status


async def test_a_route_of_the_callers_at_root_wins_over_the_redirect(
    sqlite_database_url: str,
) -> None:
    home = APIRouter()

    @home.get("/")
    async def index() -> dict[str, str]:
        return {"hello": "world"}

    settings = make_settings(sqlite_database_url)
    app = (
        ServiceBuilder(info=ServiceInfo(display_name="own home"), settings=settings)
        .with_ui()
        .include_router(home)
        .build()
    )
    async with running_client(app) as client:
        assert (await client.get("/")).json() == {"hello": "world"}
        assert (await client.get("/ui")).status_code == 200
