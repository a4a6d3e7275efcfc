"""GET /metrics: Prometheus text with job counters, run durations, queue gauges read from the
database, and HTTP requests counted by route template."""

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.db.database import Database
from app.jobs.context import JobContext
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry
from tests.conftest import make_settings, running_client
from tests.helpers import execute, wait_for_job
from tests.jobs.helpers import insert_job

WAIT = 15.0
MonitoredFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def monitored(database_url: str) -> MonitoredFactory:
    """`async with monitored(run_worker=False) as client:` a service with `.with_monitoring()`."""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = make_settings(database_url, **overrides)
        app = (
            ServiceBuilder(info=ServiceInfo(display_name="monitored"), settings=settings)
            .with_health()
            .with_tasks()
            .with_monitoring()
            .build()
        )
        return running_client(app)

    return factory


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_job_counters_and_run_durations(
    monitored: MonitoredFactory, registry: type[TaskRegistry]
) -> None:
    async def fine() -> int:
        return 1

    async def broken() -> None:
        raise ValueError("no")

    registry.register_function("fine", fine)
    registry.register_function("broken", broken)
    async with monitored() as client:
        ids = [await execute(client, "fine") for _ in range(2)]
        ids.append(await execute(client, "broken"))
        for job_id in ids:
            await wait_for_job(client, job_id)
        samples = await scrape(client)

    assert value(samples, "taskexec_jobs_submitted_total", task="fine") == 2
    assert value(samples, "taskexec_jobs_submitted_total", task="broken") == 1
    assert value(samples, "taskexec_jobs_finished_total", task="fine", status="completed") == 2
    assert value(samples, "taskexec_jobs_finished_total", task="broken", status="failed") == 1
    assert value(samples, "taskexec_job_run_duration_seconds_count", task="fine") == 2
    assert value(samples, "taskexec_job_run_duration_seconds_count", task="broken") == 1
    total = value(samples, "taskexec_job_run_duration_seconds_sum", task="fine")
    assert total is not None
    assert total >= 0
    assert value(samples, "taskexec_job_run_duration_seconds_bucket", task="fine", le="+Inf") == 2
    assert value(samples, "taskexec_queue_depth") == 0
    assert value(samples, "taskexec_jobs_running") == 0
    assert value(samples, "taskexec_oldest_pending_age_seconds") == 0


async def test_a_retried_job_counts_once_when_it_finishes(
    monitored: MonitoredFactory, registry: type[TaskRegistry]
) -> None:
    async def flaky(ctx: JobContext) -> int:
        if ctx.attempt == 1:
            raise ConnectionError("again")
        return ctx.attempt

    registry.register_function("flaky", flaky, retries=1, retry_backoff=0)
    async with monitored() as client:
        await wait_for_job(client, await execute(client, "flaky"))
        samples = await scrape(client)

    assert value(samples, "taskexec_jobs_finished_total", task="flaky", status="completed") == 1
    assert value(samples, "taskexec_jobs_finished_total", task="flaky", status="failed") is None
    # Every attempt is timed.
    assert value(samples, "taskexec_job_run_duration_seconds_count", task="flaky") == 2


async def test_queue_gauges_without_a_worker(
    monitored: MonitoredFactory, registry: type[TaskRegistry]
) -> None:
    async def later() -> None:
        return None

    registry.register_function("later", later)
    async with monitored(run_worker=False) as client:
        empty = await scrape(client)
        await execute(client, "later")
        response = await client.post(
            "/api/v1/tasks/later/$execute", json={"params": {}, "delay": 3600}
        )
        assert response.status_code == 202
        samples = await scrape(client)

    assert value(empty, "taskexec_queue_depth") == 0
    assert value(empty, "taskexec_oldest_pending_age_seconds") == 0
    assert value(samples, "taskexec_queue_depth") == 2
    oldest = value(samples, "taskexec_oldest_pending_age_seconds")
    assert oldest is not None
    # Only the due job counts, and nothing is running it.
    assert 0 < oldest < 3600
    assert value(samples, "taskexec_jobs_running") == 0


async def test_a_running_job_shows_in_the_running_gauge(
    monitored: MonitoredFactory, registry: type[TaskRegistry]
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def held() -> None:
        started.set()
        await asyncio.wait_for(release.wait(), WAIT)

    registry.register_function("held", held)
    async with monitored() as client:
        job_id = await execute(client, "held")
        await asyncio.wait_for(started.wait(), WAIT)
        during = await scrape(client)
        release.set()
        await wait_for_job(client, job_id)
        after = await scrape(client)

    assert value(during, "taskexec_jobs_running") == 1
    assert value(during, "taskexec_queue_depth") == 0
    assert value(after, "taskexec_jobs_running") == 0


async def test_http_requests_are_counted_by_route_template(
    monitored: MonitoredFactory, registry: type[TaskRegistry]
) -> None:
    async def fine() -> int:
        return 1

    registry.register_function("fine", fine)
    async with monitored() as client:
        job_id = await execute(client, "fine")
        await wait_for_job(client, job_id)
        await client.get(f"/api/v1/jobs/{job_id}/events")
        await client.get("/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV")
        await client.get(f"/api/v1/nowhere/{job_id}")
        samples = await scrape(client)

    requests = {
        dict(labels)["route"]: v
        for (name, labels), v in samples.items()
        if name == "taskexec_http_requests_total"
    }
    assert (
        value(
            samples,
            "taskexec_http_requests_total",
            method="POST",
            route="/api/v1/tasks/{name}/$execute",
            status="202",
        )
        == 1
    )
    polled = value(
        samples,
        "taskexec_http_requests_total",
        method="GET",
        route="/api/v1/jobs/{job_id}",
        status="200",
    )
    assert polled is not None
    assert polled >= 1
    assert (
        value(
            samples,
            "taskexec_http_requests_total",
            method="GET",
            route="/api/v1/jobs/{job_id}",
            status="404",
        )
        == 1
    )
    assert "/api/v1/jobs/{job_id}/events" in requests
    assert (
        value(
            samples, "taskexec_http_requests_total", method="GET", route="unmatched", status="404"
        )
        == 1
    )
    labels = [label for (_, pairs) in samples for _, label in pairs]
    assert not [label for label in labels if job_id in label], "a raw id became a label"
    assert (
        value(
            samples,
            "taskexec_http_request_duration_seconds_count",
            method="GET",
            route="/api/v1/jobs/{job_id}",
        )
        or 0
    ) >= 2


async def test_without_monitoring_there_is_no_metrics_route(
    database_url: str,
) -> None:
    settings = make_settings(database_url, run_worker=False)
    app = ServiceBuilder(info=ServiceInfo(display_name="plain"), settings=settings).with_tasks()
    async with running_client(app.build()) as client:
        response = await client.get("/metrics")
    assert response.status_code == 404


async def test_a_job_canceled_before_it_ran_counts_as_finished(
    monitored: MonitoredFactory, registry: type[TaskRegistry]
) -> None:
    async def idle() -> None:
        return None

    registry.register_function("idle", idle)
    async with monitored(run_worker=False) as client:
        job_id = await execute(client, "idle")
        assert (await client.post(f"/api/v1/jobs/{job_id}/$cancel")).status_code == 200
        samples = await scrape(client)

    assert value(samples, "taskexec_jobs_submitted_total", task="idle") == 1
    assert value(samples, "taskexec_jobs_finished_total", task="idle", status="canceled") == 1


async def test_pending_jobs_of_a_task_no_worker_here_has_are_shown(
    monitored: MonitoredFactory, registry: type[TaskRegistry], database_url: str
) -> None:
    # A job queued by a newer deploy, for a task this process does not have.
    async def here() -> str:
        return "here"

    registry.register_function("here", here)
    database = Database(database_url)
    try:
        elsewhere = await insert_job(database, task_name="elsewhere", priority=5)
    finally:
        await database.dispose()
    async with monitored() as client:
        done = await wait_for_job(client, await execute(client, "here"))
        samples = await scrape(client)
        listed = await client.get("/api/v1/jobs", params={"status": "pending", "task": "elsewhere"})
        job = (await client.get(f"/api/v1/jobs/{elsewhere.id}")).json()

    assert done["status"] == "completed"
    assert job["status"] == "pending"
    assert value(samples, "taskexec_jobs_pending", task="elsewhere") == 1
    assert value(samples, "taskexec_jobs_pending", task="here") is None
    assert value(samples, "taskexec_jobs_pending_unregistered") == 1
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == [elsewhere.id]
