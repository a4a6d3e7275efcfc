"""Request bodies are capped: by the declared length at once, or while they stream."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message

from app.tasks.registry import TaskRegistry
from tests.conftest import build_app, running_client

LIMIT = 1024
CHUNK = 256
EXECUTE_PATH = "/api/v1/tasks/sink/$execute"


@pytest.fixture(autouse=True)
def sink_task(registry: type[TaskRegistry]) -> None:
    @registry.register("sink")
    def sink(**kwargs: Any) -> int:
        return len(kwargs)


@pytest.fixture
def app(database_url: str) -> FastAPI:
    return build_app(database_url, max_body_bytes=LIMIT)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running_client(app) as client:
        yield client


def _assert_413(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 413
    assert problem["code"] == "payload_too_large"
    assert problem["type"] == "urn:taskexec:problem:payload_too_large"
    assert problem["title"]
    assert str(LIMIT) in problem["detail"]


def _body_of_size(size: int) -> bytes:
    """A JSON `$execute` body of exactly `size` bytes."""
    skeleton = b'{"params": {"pad": ""}}'
    body = skeleton.replace(b'""', b'"' + b"x" * (size - len(skeleton)) + b'"')
    assert len(body) == size
    return body


class ChunkedRequest:
    """Drives the ASGI app with a body streamed in chunks, counting what it reads.

    The body is `parts` if given, else `chunks` chunks of `chunk_size` spaces (made as read).
    """

    def __init__(
        self, parts: list[bytes] | None = None, *, chunks: int = 0, chunk_size: int = CHUNK
    ) -> None:
        self.parts = parts
        self.chunks = len(parts) if parts is not None else chunks
        self.chunk_size = chunk_size
        self.consumed = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.consumed >= self.chunks:
            return {"type": "http.disconnect"}
        part = b" " * self.chunk_size if self.parts is None else self.parts[self.consumed]
        self.consumed += 1
        return {"type": "http.request", "body": part, "more_body": self.consumed < self.chunks}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def run(self, app: FastAPI, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": EXECUTE_PATH,
            "raw_path": EXECUTE_PATH.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"test"), (b"content-type", b"application/json")]
            + (headers or []),
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
        }
        await app(scope, self.receive, self.send)

    @property
    def status(self) -> int:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        status: int = start["status"]
        return status

    @property
    def headers(self) -> dict[str, str]:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return {k.decode(): v.decode() for k, v in start["headers"]}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def _job_total(client: httpx.AsyncClient) -> int:
    total: int = (await client.get("/api/v1/jobs")).json()["total"]
    return total


async def test_declared_length_over_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(EXECUTE_PATH, content=_body_of_size(LIMIT + 1))

    _assert_413(response.status_code, dict(response.headers), response.content)
    assert await _job_total(client) == 0


async def test_large_declared_length_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(EXECUTE_PATH, content=_body_of_size(200_000))

    _assert_413(response.status_code, dict(response.headers), response.content)
    assert await _job_total(client) == 0


async def test_body_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        EXECUTE_PATH,
        content=_body_of_size(LIMIT),
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 202, response.text
    assert await _job_total(client) == 1


async def test_body_under_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(EXECUTE_PATH, json={"params": {"a": 1, "b": "two"}})

    assert response.status_code == 202, response.text
    job = (await client.get(response.headers["location"])).json()
    assert job["params"] == {"a": 1, "b": "two"}


async def test_streamed_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    async def stream() -> AsyncIterator[bytes]:
        for _ in range(50):
            yield b" " * 100

    response = await client.post(
        EXECUTE_PATH, content=stream(), headers={"content-type": "application/json"}
    )

    _assert_413(response.status_code, dict(response.headers), response.content)
    assert await _job_total(client) == 0


async def test_streamed_body_under_limit_is_accepted(client: httpx.AsyncClient) -> None:
    body = _body_of_size(LIMIT - 24)

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    response = await client.post(
        EXECUTE_PATH, content=stream(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 202, response.text
    assert await _job_total(client) == 1


async def test_chunked_body_stops_being_read_soon_after_the_limit(app: FastAPI) -> None:
    offered = 10_000  # 2.5 MB on offer; reading it all would defeat the limit
    request = ChunkedRequest(chunks=offered)

    async with running_client(app):
        await request.run(app)

    _assert_413(request.status, request.headers, request.body)
    # The limit is passed by the fifth 256-byte chunk; at most one more may be read.
    assert LIMIT // CHUNK < request.consumed <= LIMIT // CHUNK + 2
    assert request.consumed < offered


async def test_understated_content_length_does_not_bypass_the_limit(app: FastAPI) -> None:
    request = ChunkedRequest(chunks=1_000)

    async with running_client(app):
        await request.run(app, headers=[(b"content-length", b"10")])

    _assert_413(request.status, request.headers, request.body)
    assert request.consumed <= LIMIT // CHUNK + 2


async def test_declared_length_over_limit_reads_nothing(app: FastAPI) -> None:
    request = ChunkedRequest(chunks=1_000)

    async with running_client(app):
        await request.run(app, headers=[(b"content-length", str(CHUNK * 1_000).encode())])

    _assert_413(request.status, request.headers, request.body)
    assert request.consumed == 0


async def test_chunked_body_under_limit_is_read_completely(app: FastAPI) -> None:
    body = json.dumps({"params": {"k": "v" * 500}}).encode()
    request = ChunkedRequest([body[i : i + 100] for i in range(0, len(body), 100)])

    async with running_client(app) as client:
        await request.run(app)
        assert await _job_total(client) == 1

    assert request.status == 202, request.body
    assert request.consumed == request.chunks
    assert json.loads(request.body)["job_id"]


async def test_default_limit_is_one_mebibyte(database_url: str) -> None:
    async with running_client(build_app(database_url)) as client:
        over = await client.post(EXECUTE_PATH, content=_body_of_size(1024 * 1024 + 1))
        under = await client.post(
            EXECUTE_PATH,
            content=_body_of_size(1024 * 1024),
            headers={"content-type": "application/json"},
        )

    assert over.status_code == 413
    assert under.status_code == 202, under.text
