"""`ServiceBuilder`: features composed one call at a time."""

from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI

from app.core.settings import Settings
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry
from tests.conftest import make_settings, running_client, sqlite_url
from tests.helpers import run_to_end

extra_router = APIRouter()


@extra_router.get("/ping")
async def ping() -> dict[str, str]:
    return {"pong": "yes"}


def _builder(database_url: str, **overrides: object) -> ServiceBuilder:
    return ServiceBuilder(
        info=ServiceInfo(display_name="Built", version="9.8.7", description="A built service."),
        settings=make_settings(database_url, **overrides),
    )


def _paths(app: FastAPI) -> set[str]:
    return set(app.openapi()["paths"])


def test_methods_chain_on_the_same_builder(database_url: str) -> None:
    builder = _builder(database_url)

    assert builder.with_health() is builder
    assert builder.with_jobs(max_concurrency=2) is builder
    assert builder.with_artifacts() is builder
    assert builder.with_tasks() is builder
    assert builder.with_auth(["k"]) is builder
    assert builder.with_database(database_url) is builder
    assert builder.include_router(extra_router) is builder
    assert isinstance(builder.build(), FastAPI)


def test_build_uses_service_info(database_url: str) -> None:
    app = _builder(database_url).with_health().build()

    schema = app.openapi()
    assert app.title == "Built"
    assert schema["info"]["title"] == "Built"
    assert schema["info"]["version"] == "9.8.7"
    assert schema["info"]["description"] == "A built service."


def test_health_only(database_url: str) -> None:
    paths = _paths(_builder(database_url).with_health().build())

    assert {"/health", "/health/ready", "/api/v1/info"} <= paths
    assert not any(
        p.startswith(("/api/v1/tasks", "/api/v1/jobs", "/api/v1/artifacts")) for p in paths
    )


def test_with_tasks_implies_jobs_and_artifacts(database_url: str) -> None:
    paths = _paths(_builder(database_url).with_tasks().build())

    assert {
        "/api/v1/tasks",
        "/api/v1/tasks/{name}",
        "/api/v1/tasks/{name}/$execute",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/artifacts",
        "/api/v1/artifacts/{artifact_id}",
        "/api/v1/info",
    } <= paths
    assert "/health" not in paths


def test_jobs_and_artifacts_without_tasks(database_url: str) -> None:
    jobs_paths = _paths(_builder(database_url).with_jobs().build())
    artifact_paths = _paths(_builder(database_url).with_artifacts().build())

    assert "/api/v1/jobs" in jobs_paths
    assert "/api/v1/tasks" not in jobs_paths
    assert "/api/v1/artifacts" not in jobs_paths
    assert "/api/v1/artifacts" in artifact_paths
    assert "/api/v1/jobs" not in artifact_paths


async def test_missing_features_are_404(database_url: str) -> None:
    async with running_client(_builder(database_url).with_health().build()) as client:
        tasks = await client.get("/api/v1/tasks")
        health = await client.get("/health")

    assert tasks.status_code == 404
    assert tasks.headers["content-type"] == "application/problem+json"
    assert health.status_code == 200


async def test_no_worker_without_jobs(database_url: str) -> None:
    app = _builder(database_url).with_health().with_artifacts().build()

    async with running_client(app) as client:
        info = (await client.get("/api/v1/info")).json()
        ready = (await client.get("/health/ready")).json()

    assert app.state.worker is None
    assert info["worker"] is False
    assert "worker" not in ready["checks"]


async def test_with_jobs_max_concurrency(database_url: str) -> None:
    app = _builder(database_url, max_concurrency=4).with_jobs(max_concurrency=2).build()

    async with running_client(app) as client:
        info = (await client.get("/api/v1/info")).json()

    assert info["max_concurrency"] == 2
    assert info["worker"] is True
    assert app.state.settings.max_concurrency == 2


async def test_worker_lifecycle_follows_the_lifespan(database_url: str) -> None:
    app = _builder(database_url).with_tasks().build()

    async with running_client(app):
        worker = app.state.worker
        assert worker is not None
        assert worker.is_alive

    assert not worker.is_alive


async def test_with_jobs_run_worker_false_leaves_jobs_pending(
    registry: type[TaskRegistry], database_url: str
) -> None:
    @registry.register("noop")
    def noop() -> None:
        pass

    app = _builder(database_url).with_tasks().with_jobs(run_worker=False).build()
    async with running_client(app) as client:
        response = await client.post("/api/v1/tasks/noop/$execute")
        job = (await client.get(response.headers["location"])).json()

    assert response.status_code == 202
    assert app.state.worker is None
    assert job["status"] == "pending"


async def test_with_database_migrates_a_new_file(
    registry: type[TaskRegistry], tmp_path: Path, database_url: str
) -> None:
    @registry.register("double")
    def double(n: int) -> int:
        return n * 2

    fresh = tmp_path / "nested" / "fresh.db"
    app = (
        _builder(database_url)
        .with_health()
        .with_tasks()
        .with_database(sqlite_url(fresh), auto_migrate=True)
        .build()
    )

    async with running_client(app) as client:
        ready = await client.get("/health/ready")
        job = await run_to_end(client, "double", {"n": 4})
        result = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()["data"]["result"]

    assert fresh.exists()
    assert app.state.settings.database_url == sqlite_url(fresh)
    assert ready.status_code == 200
    assert job["status"] == "completed"
    assert result == 8


def test_build_does_not_change_the_given_settings(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url)
    builder = ServiceBuilder(info=ServiceInfo(display_name="x"), settings=settings)

    app = builder.with_jobs(max_concurrency=9).with_database(sqlite_url(tmp_path / "o.db")).build()

    assert settings.max_concurrency == 4
    assert settings.database_url == database_url
    assert app.state.settings.max_concurrency == 9
    assert app.state.settings.database_url == sqlite_url(tmp_path / "o.db")


async def test_include_router(database_url: str) -> None:
    app = (
        _builder(database_url)
        .with_health()
        .include_router(extra_router, prefix="/extra", tags=["Extra"])
        .build()
    )

    async with running_client(app) as client:
        response = await client.get("/extra/ping")
        unprefixed = await client.get("/ping")

    assert response.status_code == 200
    assert response.json() == {"pong": "yes"}
    assert unprefixed.status_code == 404
    assert app.openapi()["paths"]["/extra/ping"]["get"]["tags"] == ["Extra"]


async def test_built_app_caps_bodies(registry: type[TaskRegistry], database_url: str) -> None:
    @registry.register("sink")
    def sink(**kwargs: object) -> None:
        pass

    app = _builder(database_url, max_body_bytes=2048).with_tasks().build()
    async with running_client(app) as client:
        response = await client.post(
            "/api/v1/tasks/sink/$execute", json={"params": {"pad": "x" * 3000}}
        )

    assert response.status_code == 413


def test_settings_come_from_the_environment_when_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKEXEC_MAX_BODY_BYTES", "5000")
    monkeypatch.setenv("TASKEXEC_MAX_CONCURRENCY", "5")

    builder = ServiceBuilder(info=ServiceInfo(display_name="env"))

    assert isinstance(builder.settings, Settings)
    assert builder.settings.max_body_bytes == 5000
    assert builder.settings.max_concurrency == 5


async def test_two_apps_do_not_share_state(
    registry: type[TaskRegistry], database_url: str, tmp_path: Path
) -> None:
    @registry.register("noop")
    def noop() -> None:
        pass

    first = _builder(database_url).with_tasks().build()
    second = (
        _builder(database_url)
        .with_tasks()
        .with_database(sqlite_url(tmp_path / "other.db"), auto_migrate=True)
        .build()
    )

    async with running_client(first) as one, running_client(second) as two:
        await run_to_end(one, "noop")
        first_total = (await one.get("/api/v1/jobs")).json()["total"]
        second_total = (await two.get("/api/v1/jobs")).json()["total"]

    assert first.state.database is not second.state.database
    assert first_total == 1
    assert second_total == 0
