"""Typed Swagger: one `$execute` operation per registered task, served by the generic route."""

from enum import StrEnum
from typing import Any

import httpx
import pytest

from app.tasks.registry import TaskRegistry
from tests.conftest import build_app, running_client

GENERIC = "/api/v1/tasks/{name}/$execute"


class Mode(StrEnum):
    FAST = "fast"
    SLOW = "slow"


def register_tasks(registry: type[TaskRegistry]) -> None:
    @registry.register("resize", tags=["images"])
    def resize(
        width: int, height: int, mode: Mode = Mode.FAST, labels: list[str] | None = None
    ) -> dict[str, int]:
        """Resize an image to width x height."""
        return {"area": width * height}

    @registry.register("ping")
    async def ping() -> str:
        return "pong"


@pytest.fixture
def client_factory(sqlite_database_url: str) -> Any:
    """The document does not depend on the database: SQLite only."""
    return lambda: running_client(build_app(sqlite_database_url))


async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    assert ref.startswith("#/components/schemas/"), ref
    target: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return target


async def test_each_task_has_its_own_typed_operation(
    client_factory: Any, registry: type[TaskRegistry]
) -> None:
    register_tasks(registry)
    async with client_factory() as client:
        document = await openapi(client)

    operation = document["paths"]["/api/v1/tasks/resize/$execute"]["post"]
    assert operation["operationId"] == "execute_resize"
    assert operation["description"].startswith("Resize an image to width x height.")
    body = operation["requestBody"]
    assert body["required"] is True
    content = body["content"]["application/json"]
    schema = content["schema"]
    assert schema["required"] == ["params"]
    # The execute options are there too, as in the generic body.
    assert {"priority", "delay", "run_at", "timeout", "retries"} <= set(schema["properties"])
    params = resolve(document, schema["properties"]["params"])
    assert params["required"] == ["width", "height"]
    assert params["properties"]["width"]["type"] == "integer"
    mode = resolve(document, params["properties"]["mode"])
    assert mode["enum"] == ["fast", "slow"]
    assert content["example"] == {
        "params": {"width": 0, "height": 0, "mode": "fast", "labels": None}
    }
    # The generic operation's answers (problem+json) and query/header parameters carry over.
    assert set(operation["responses"]) >= {"200", "202", "400", "404", "409", "413"}
    assert "application/problem+json" in operation["responses"]["400"]["content"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert names == {"wait", "Idempotency-Key"}


async def test_a_task_without_params_has_an_optional_body(
    client_factory: Any, registry: type[TaskRegistry]
) -> None:
    register_tasks(registry)
    async with client_factory() as client:
        document = await openapi(client)

    operation = document["paths"]["/api/v1/tasks/ping/$execute"]["post"]
    assert operation["requestBody"]["required"] is False
    assert operation["requestBody"]["content"]["application/json"]["example"] == {"params": {}}
    assert operation["description"].startswith("Run the task 'ping'.")


async def test_the_generic_route_stays_documented_and_ids_are_unique(
    client_factory: Any, registry: type[TaskRegistry]
) -> None:
    register_tasks(registry)
    async with client_factory() as client:
        document = await openapi(client)
        again = await openapi(client)

    assert document == again
    generic = document["paths"][GENERIC]["post"]
    assert generic["operationId"] == "execute_task"
    ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert "execute_resize" in ids
    assert "execute_ping" in ids


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"params": {"width": 2, "height": 3, "mode": "slow"}}, 202),
        ({"params": {"width": 2}}, 400),
        ({"params": {"width": 2, "height": 3, "mode": "sideways"}}, 400),
    ],
)
async def test_the_documented_paths_are_served_by_the_generic_route(
    client_factory: Any,
    registry: type[TaskRegistry],
    body: dict[str, Any],
    status: int,
) -> None:
    register_tasks(registry)
    async with client_factory() as client:
        response = await client.post("/api/v1/tasks/resize/$execute", json=body)

    assert response.status_code == status, response.text
