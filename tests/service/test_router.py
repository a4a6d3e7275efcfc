"""`/health`, `/health/ready` and `/api/v1/info`."""

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory, build_app, make_settings, running_client, sqlite_url


def _assert_503(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == 503
    assert body["code"] == "unavailable"
    assert body["title"] == "Service unavailable"
    assert body["instance"] == "/health/ready"
    return body


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["status"] == "ok"


async def test_ready_checks_database_and_worker(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "worker": "ok"}}


async def test_ready_is_503_when_the_worker_is_not_running(database_url: str) -> None:
    app = build_app(database_url)
    async with running_client(app) as client:
        assert (await client.get("/health/ready")).status_code == 200

        await app.state.worker.stop()
        response = await client.get("/health/ready")
        health = await client.get("/health")

    body = _assert_503(response)
    assert "worker" in body["detail"]
    # Liveness is separate from readiness.
    assert health.status_code == 200


async def test_ready_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    broken = sqlite_url(tmp_path / "no" / "such" / "directory" / "taskexec.db")
    app = build_app(broken)

    async with running_client(app) as client:
        response = await client.get("/health/ready")
        health = await client.get("/health")

    body = _assert_503(response)
    assert "database" in body["detail"]
    assert str(tmp_path) not in response.text
    assert health.status_code == 200


async def test_ready_is_503_when_the_database_is_not_a_database(tmp_path: Path) -> None:
    not_a_file = tmp_path / "a-directory.db"
    not_a_file.mkdir()

    async with running_client(build_app(sqlite_url(not_a_file))) as client:
        response = await client.get("/health/ready")

    _assert_503(response)


async def test_ready_without_a_worker_checks_only_the_database(database_url: str) -> None:
    app = (
        ServiceBuilder(
            info=ServiceInfo(display_name="api only"), settings=make_settings(database_url)
        )
        .with_health()
        .with_jobs(run_worker=False)
        .with_tasks()
        .build()
    )
    async with running_client(app) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_info(
    registry: type[TaskRegistry], client_factory: ClientFactory, database_url: str
) -> None:
    @registry.register("one")
    def one() -> int:
        return 1

    @registry.register("two")
    async def two() -> int:
        return 2

    async with client_factory(max_concurrency=3) as client:
        response = await client.get("/api/v1/info")

    assert response.status_code == 200
    assert response.json() == {
        "display_name": "test service",
        "version": "0.1.0",
        "description": None,
        "database": make_url(database_url).get_backend_name(),
        "max_concurrency": 3,
        "worker": True,
        "tasks": 2,
    }


async def test_info_reflects_builder_options(database_url: str) -> None:
    app = (
        ServiceBuilder(
            info=ServiceInfo(display_name="Billing", version="2.3.4", description="Bills."),
            settings=make_settings(database_url),
        )
        .with_health()
        .with_jobs(max_concurrency=6, run_worker=False)
        .with_tasks()
        .build()
    )
    async with running_client(app) as client:
        info = (await client.get("/api/v1/info")).json()

    assert info["display_name"] == "Billing"
    assert info["version"] == "2.3.4"
    assert info["description"] == "Bills."
    assert info["max_concurrency"] == 6
    assert info["worker"] is False
    assert info["tasks"] == 0


async def test_info_reveals_no_secrets(database_url: str) -> None:
    app = (
        ServiceBuilder(
            info=ServiceInfo(display_name="secret"), settings=make_settings(database_url)
        )
        .with_health()
        .with_tasks()
        .with_auth(["super-secret-key"])
        .build()
    )
    async with running_client(app) as client:
        response = await client.get("/api/v1/info", headers={"X-API-Key": "super-secret-key"})

    assert response.status_code == 200
    assert "super-secret-key" not in response.text
    database = make_url(database_url).database
    assert database
    assert database not in response.text


@pytest.mark.parametrize("path", ["/health", "/health/ready"])
async def test_health_routes_are_not_under_the_api_prefix(
    client: httpx.AsyncClient, path: str
) -> None:
    assert (await client.get(path)).status_code == 200
    assert (await client.get(f"/api/v1{path}")).status_code == 404
