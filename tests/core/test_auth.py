"""Optional API keys guard `/api/v1`; health and docs stay open."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.core.auth import UnauthorizedError
from app.core.errors import AppError
from app.main import create_app
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry
from tests.conftest import make_settings, running_client
from tests.helpers import wait_for_job

KEY = "k1"
OTHER_KEY = "second-key"


def _app(database_url: str, keys: list[str]) -> FastAPI:
    return (
        ServiceBuilder(info=ServiceInfo(display_name="auth"), settings=make_settings(database_url))
        .with_health()
        .with_tasks()
        .with_auth(keys)
        .build()
    )


@pytest.fixture
async def client(
    database_url: str, registry: type[TaskRegistry]
) -> AsyncIterator[httpx.AsyncClient]:
    @registry.register("echo")
    def echo(value: int = 1) -> int:
        return value

    async with running_client(_app(database_url, [KEY, OTHER_KEY])) as client:
        yield client


def _assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 401
    assert body["code"] == "unauthorized"
    assert body["title"] == "Unauthorized"
    assert "API key" in body["detail"]
    assert KEY not in response.text


API_REQUESTS = [
    ("GET", "/api/v1/tasks"),
    ("GET", "/api/v1/tasks/echo"),
    ("POST", "/api/v1/tasks/echo/$execute"),
    ("GET", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
    ("GET", "/api/v1/artifacts"),
    ("GET", "/api/v1/artifacts/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
    ("GET", "/api/v1/info"),
    ("GET", "/api/v1/workers"),
]


@pytest.mark.parametrize(("method", "path"), API_REQUESTS)
async def test_api_without_key_is_401(client: httpx.AsyncClient, method: str, path: str) -> None:
    _assert_401(await client.request(method, path))


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": KEY},
        {"Authorization": "Bearer "},
        {"X-API-Key": "wrong"},
        {"X-API-Key": ""},
        {"X-API-Key": KEY.upper()},
        {"X-API-Key": KEY + "x"},
        {"X-API-Key": KEY[:-1]},
    ],
)
async def test_api_with_a_wrong_key_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    _assert_401(await client.get("/api/v1/tasks", headers=headers))


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": f"bearer {KEY}"},
        {"X-API-Key": KEY},
        {"Authorization": f"Bearer {OTHER_KEY}"},
        {"X-API-Key": OTHER_KEY},
    ],
)
async def test_api_with_a_valid_key(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    tasks = await client.get("/api/v1/tasks", headers=headers)
    info = await client.get("/api/v1/info", headers=headers)

    assert tasks.status_code == 200
    assert [t["name"] for t in tasks.json()] == ["echo"]
    assert info.status_code == 200


async def test_execute_and_follow_a_job_with_a_key(client: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}

    response = await client.post(
        "/api/v1/tasks/echo/$execute", json={"params": {"value": 3}}, headers=headers
    )
    assert response.status_code == 202
    job_id = response.json()["job_id"]

    _assert_401(await client.get(f"/api/v1/jobs/{job_id}"))
    client.headers.update(headers)
    job = await wait_for_job(client, job_id)
    assert job["status"] == "completed"
    artifact = await client.get(f"/api/v1/artifacts/{job['result']}")
    assert artifact.json()["data"]["result"] == 3


async def test_unauthorized_execute_queues_nothing(client: httpx.AsyncClient) -> None:
    _assert_401(await client.post("/api/v1/tasks/echo/$execute", json={"params": {"value": 2}}))

    jobs = await client.get("/api/v1/jobs", headers={"X-API-Key": KEY})

    assert jobs.json()["total"] == 0


@pytest.mark.parametrize(
    "path", ["/health", "/health/ready", "/docs", "/openapi.json", "/_docs-static/swagger-ui.css"]
)
async def test_health_and_docs_stay_open(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200, response.text


async def test_without_auth_api_is_open(database_url: str) -> None:
    app = (
        ServiceBuilder(info=ServiceInfo(display_name="open"), settings=make_settings(database_url))
        .with_health()
        .with_tasks()
        .build()
    )
    async with running_client(app) as client:
        response = await client.get("/api/v1/tasks")

    assert response.status_code == 200


@pytest.mark.parametrize("keys", [[], [""], ["ok", ""]])
def test_with_auth_needs_non_empty_keys(keys: list[str]) -> None:
    builder = ServiceBuilder(info=ServiceInfo(display_name="x"))

    with pytest.raises(ValueError, match="API key"):
        builder.with_auth(keys)


async def test_create_app_enables_auth_from_settings(database_url: str) -> None:
    settings = make_settings(database_url, api_keys=["from-env"])
    async with running_client(create_app(settings)) as client:
        denied = await client.get("/api/v1/tasks")
        allowed = await client.get("/api/v1/tasks", headers={"X-API-Key": "from-env"})
        health = await client.get("/health")

    _assert_401(denied)
    assert allowed.status_code == 200
    assert health.status_code == 200


def test_unauthorized_error_is_an_app_error() -> None:
    error = UnauthorizedError("nope")

    assert isinstance(error, AppError)
    assert (error.status, error.code) == (401, "unauthorized")


async def test_a_401_says_how_to_authenticate(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/jobs")

    _assert_401(response)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    assert 'realm="taskexec"' in challenge


async def test_openapi_declares_both_key_schemes_on_guarded_routes(
    client: httpx.AsyncClient,
) -> None:
    schema = (await client.get("/openapi.json")).json()

    schemes = schema["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["BearerKey"].items()
    assert schemes["ApiKeyHeader"]["type"] == "apiKey"
    assert schemes["ApiKeyHeader"]["in"] == "header"
    assert schemes["ApiKeyHeader"]["name"] == "X-API-Key"
    execute = schema["paths"]["/api/v1/tasks/{name}/$execute"]["post"]
    assert {"BearerKey": []} in execute["security"]
    assert {"ApiKeyHeader": []} in execute["security"]
    assert "401" in execute["responses"]
    assert "security" not in schema["paths"]["/health"]["get"]


async def test_without_keys_the_openapi_has_no_security(database_url: str) -> None:
    app = (
        ServiceBuilder(info=ServiceInfo(display_name="open"), settings=make_settings(database_url))
        .with_health()
        .with_tasks()
        .build()
    )
    async with running_client(app) as client:
        schema = (await client.get("/openapi.json")).json()
    assert "securitySchemes" not in schema.get("components", {})
    assert "security" not in schema["paths"]["/api/v1/jobs"]["get"]
    assert "401" not in schema["paths"]["/api/v1/jobs"]["get"]["responses"]
