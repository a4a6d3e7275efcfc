"""Every error leaves the service as RFC 9457 `application/problem+json`."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException

from app.core.errors import (
    PROBLEM_JSON,
    AppError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    ValidationFailedError,
    problem,
)
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from tests.conftest import make_settings
from tests.helpers import assert_problem

SECRET = "db password hunter2 at /srv/secret/config.py"

boom_router = APIRouter(prefix="/boom")


@boom_router.get("/unhandled")
async def raise_unhandled() -> None:
    raise RuntimeError(SECRET)


@boom_router.get("/key-error")
async def raise_key_error() -> None:
    raise KeyError(SECRET)


@boom_router.get("/conflict")
async def raise_conflict() -> None:
    raise ConflictError("It is already done.")


@boom_router.get("/bad")
async def raise_bad_request() -> None:
    raise BadRequestError("No good.", errors=[{"loc": ["query", "x"], "msg": "bad"}])


@boom_router.get("/http")
async def raise_http() -> None:
    raise HTTPException(status_code=403, detail="Forbidden here.", headers={"X-Reason": "test"})


@boom_router.get("/typed")
async def typed(number: int) -> dict[str, int]:
    return {"number": number}


def _app(database_url: str) -> FastAPI:
    return (
        ServiceBuilder(
            info=ServiceInfo(display_name="errors"), settings=make_settings(database_url)
        )
        .with_health()
        .with_tasks()
        .include_router(boom_router)
        .build()
    )


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that gets the server's 500 response instead of the re-raised exception."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(_app(database_url)) as client:
        yield client


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route")

    body = assert_problem(response, 404, "not_found")
    assert body["instance"] == "/no/such/route"


async def test_unknown_api_route_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/nothing", json={})

    assert_problem(response, 404, "not_found")


async def test_wrong_method_is_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/tasks")

    body = assert_problem(response, 405, "method_not_allowed")
    assert body["title"] == "Method not allowed"
    assert "GET" in response.headers["allow"]


async def test_request_validation_error_is_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom/typed", params={"number": "abc"})

    body = assert_problem(response, 400, "validation_error")
    assert body["errors"] == [
        {
            "loc": ["query", "number"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]
    assert "query.number" in body["detail"]


async def test_missing_query_param_is_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom/typed")

    body = assert_problem(response, 400, "validation_error")
    assert [e["type"] for e in body["errors"]] == ["missing"]


async def test_query_bounds_are_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/jobs", params={"limit": 0, "offset": -1})

    body = assert_problem(response, 400, "validation_error")
    assert sorted(tuple(e["loc"]) for e in body["errors"]) == [
        ("query", "limit"),
        ("query", "offset"),
    ]


async def test_app_error_renders_its_status_and_code(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom/conflict")

    body = assert_problem(response, 409, "conflict")
    assert body["title"] == "Conflict"
    assert body["detail"] == "It is already done."
    assert body["instance"] == "/boom/conflict"
    assert "errors" not in body


async def test_app_error_with_entries(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom/bad")

    body = assert_problem(response, 400, "bad_request")
    assert body["errors"] == [{"loc": ["query", "x"], "msg": "bad"}]


async def test_http_exception_keeps_status_detail_and_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom/http")

    body = assert_problem(response, 403, "forbidden")
    assert body["detail"] == "Forbidden here."
    assert response.headers["x-reason"] == "test"


@pytest.mark.parametrize("path", ["/boom/unhandled", "/boom/key-error"])
async def test_unhandled_exception_is_500_problem_without_leaks(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    body = assert_problem(response, 500, "internal_error")
    assert body["detail"] == "The server hit an unexpected error."
    text = response.text
    for leaked in ("hunter2", "/srv/secret", "config.py", "RuntimeError", "KeyError", "Traceback"):
        assert leaked not in text
    assert __file__ not in text
    assert "File " not in text


async def test_service_keeps_working_after_a_500(client: httpx.AsyncClient) -> None:
    assert (await client.get("/boom/unhandled")).status_code == 500

    response = await client.get("/health")

    assert response.status_code == 200


# The building blocks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_type", "status", "code"),
    [
        (BadRequestError, 400, "bad_request"),
        (ValidationFailedError, 400, "validation_error"),
        (NotFoundError, 404, "not_found"),
        (ConflictError, 409, "conflict"),
        (PayloadTooLargeError, 413, "payload_too_large"),
        (ServiceUnavailableError, 503, "unavailable"),
        (AppError, 500, "internal_error"),
    ],
)
def test_error_types_carry_status_and_code(
    error_type: type[AppError], status: int, code: str
) -> None:
    error = error_type("what happened", errors=[{"loc": ["x"]}])

    assert error.status == status
    assert error.code == code
    assert error.title
    assert error.detail == "what happened"
    assert str(error) == "what happened"
    assert error.errors == [{"loc": ["x"]}]


def test_problem_builds_a_problem_json_response() -> None:
    response = problem(
        418,
        "teapot",
        "I'm a teapot",
        "Short and stout.",
        instance="/pot",
        errors=[{"loc": ["a"]}],
        headers={"Retry-After": "5"},
    )

    assert response.status_code == 418
    assert response.media_type == PROBLEM_JSON
    assert response.headers["retry-after"] == "5"
    assert json.loads(bytes(response.body)) == {
        "type": "urn:taskexec:problem:teapot",
        "title": "I'm a teapot",
        "status": 418,
        "detail": "Short and stout.",
        "code": "teapot",
        "instance": "/pot",
        "errors": [{"loc": ["a"]}],
    }


def test_problem_omits_optional_members() -> None:
    body = json.loads(bytes(problem(400, "bad_request", "Bad request", "Nope.").body))

    assert set(body) == {"type", "title", "status", "detail", "code"}


async def test_a_405_allows_every_method_served_at_the_path(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV")

    assert_problem(response, 405, "method_not_allowed")
    allowed = {method.strip() for method in response.headers["allow"].split(",")}
    assert {"GET", "DELETE"} <= allowed
    assert "PUT" not in allowed
