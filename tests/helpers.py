"""Helpers shared by the tests: waiting for jobs, reading event streams, problem assertions.

Waiting has one rule: wait on a signal the service gives (`?wait=`, the job's `$stream`, an
event bus, an `asyncio.Event`). Only what has no such signal (a port, a file, a log line, a
count in a database another process writes) is polled, and only through `poll_until` /
`apoll_until`, with a deadline.
"""

import asyncio
import inspect
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from app.jobs import models

# The statuses a job ends in, as the API spells them (the service's own set).
TERMINAL_STATUSES = frozenset(status.value for status in models.TERMINAL_STATUSES)
WAIT_SECONDS = 15.0


def poll_until(
    predicate: Callable[[], object],
    *,
    within: float = WAIT_SECONDS,
    what: str = "",
    interval: float = 0.05,
) -> None:
    """Re-check `predicate` until it holds; fail after `within` s. Only for what has no wait
    API (a port, a file, a process, another process's writes)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what or predicate}")
        time.sleep(interval)


async def apoll_until(
    check: Callable[[], object | Awaitable[object]],
    *,
    within: float = WAIT_SECONDS,
    what: str = "",
    interval: float = 0.02,
) -> object:
    """`poll_until` in an event loop; `check` may be a coroutine function. Returns what
    `check` last returned (truthy)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what or check}")
        await asyncio.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Sse:
    """One Server-Sent Event of a job's `$stream`."""

    id: int
    event: str
    data: dict[str, Any]


class _SseFields:
    def __init__(self) -> None:
        self.fields: dict[str, str] = {}

    def feed(self, line: str) -> Sse | None:
        """The event a blank line completes; comments (pings) are skipped."""
        if line == "":
            fields, self.fields = self.fields, {}
            if fields:
                return Sse(int(fields["id"]), fields["event"], json.loads(fields["data"]))
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            self.fields[key] = value.removeprefix(" ")
        return None


def sse_events(response: httpx.Response) -> Iterator[Sse]:
    """The events of a text/event-stream response, as they arrive."""
    parser = _SseFields()
    for line in response.iter_lines():
        if (event := parser.feed(line)) is not None:
            yield event


async def asse_events(response: httpx.Response) -> AsyncIterator[Sse]:
    """`sse_events` for an async response."""
    parser = _SseFields()
    async for line in response.aiter_lines():
        if (event := parser.feed(line)) is not None:
            yield event


def wait_job_sync(
    client: httpx.Client, job_id: str, *, within: float = WAIT_SECONDS
) -> dict[str, Any]:
    """The job once it is terminal, through `?wait=` (a blocking client's `wait_for_job`)."""
    deadline = time.monotonic() + within
    while True:
        wait = max(0.01, min(deadline - time.monotonic(), 10.0))
        response = client.get(f"/api/v1/jobs/{job_id}", params={"wait": wait}, timeout=wait + 10)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in TERMINAL_STATUSES:
            return job
        if time.monotonic() >= deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {within} s")


def wait_status_sync(
    client: httpx.Client, job_id: str, statuses: frozenset[str], *, within: float = WAIT_SECONDS
) -> dict[str, Any]:
    """The job once its status is one of `statuses`, re-read after each event of its `$stream`
    (no polling); fails if it ends in another status or `within` s pass."""

    def current() -> dict[str, Any]:
        response = client.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    job = current()
    if job["status"] in statuses:
        return job
    path = f"/api/v1/jobs/{job_id}/$stream"
    with client.stream("GET", path, timeout=httpx.Timeout(10, read=within)) as response:
        assert response.status_code == 200, response.read()
        deadline = time.monotonic() + within
        for _ in sse_events(response):
            job = current()
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
    job = current()
    assert job["status"] in statuses, f"job {job_id} ended {job['status']}, not {statuses}"
    return job


async def wait_for_job(
    client: httpx.AsyncClient, job_id: str, *, within: float = 15.0
) -> dict[str, Any]:
    """The job once it is terminal, waited for with the server's long poll
    (`GET /api/v1/jobs/{id}?wait=`), woken by the job's own events; fail after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        remaining = deadline - loop.time()
        wait = max(0.01, min(remaining, 10.0))
        response = await client.get(f"/api/v1/jobs/{job_id}", params={"wait": wait})
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in TERMINAL_STATUSES:
            return job
        if loop.time() >= deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {within}s")


async def execute(
    client: httpx.AsyncClient, task_name: str, params: dict[str, Any] | None = None
) -> str:
    """Submit `task_name` with `params`; assert it was accepted and return the job id."""
    body = None if params is None else {"params": params}
    response = await client.post(f"/api/v1/tasks/{task_name}/$execute", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def run_to_end(
    client: httpx.AsyncClient, task_name: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Submit a task, wait for its job to finish, and return the final job."""
    return await wait_for_job(client, await execute(client, task_name, params))


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, params=params or None)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def log_messages(client: httpx.AsyncClient, job_id: str) -> list[str]:
    page = await get_json(client, f"/api/v1/jobs/{job_id}/logs", limit=500)
    return [item["message"] for item in page["items"]]


async def events_of(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    page = await get_json(client, f"/api/v1/jobs/{job_id}/events", limit=500)
    items: list[dict[str, Any]] = page["items"]
    return items


def parse_sse(text: str) -> list[dict[str, Any]]:
    """Events of a text/event-stream body: dicts of id, event and decoded data."""
    events: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    for line in text.splitlines():
        if not line:
            if fields:
                events.append(fields)
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[key] = json.loads(value) if key == "data" else value
    if fields:
        events.append(fields)
    return events


PROBLEM_KEYS = frozenset({"type", "title", "status", "detail", "code"})


async def job_total(client: httpx.AsyncClient) -> int:
    """How many jobs the service holds (`total` of the job list)."""
    response = await client.get("/api/v1/jobs")
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """Assert `response` is an RFC 9457 problem with `status` (and `code`, if given): the
    media type, every member, a `type` naming its `code`; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["type"] == f"urn:taskexec:problem:{body['code']}"
    if code is not None:
        assert body["code"] == code, body
    return body


def follow_sync(
    client: httpx.Client,
    job_id: str,
    until: Callable[[list[Sse]], bool],
    *,
    within: float = WAIT_SECONDS,
) -> list[Sse]:
    """Read the job's `$stream` (replayed from its start, then live) until `until(events so
    far)` holds; return those events. Fails if the stream ends first or `within` s pass."""
    path = f"/api/v1/jobs/{job_id}/$stream"
    seen: list[Sse] = []
    with client.stream("GET", path, timeout=httpx.Timeout(10, read=within)) as response:
        assert response.status_code == 200, response.read()
        for event in sse_events(response):
            seen.append(event)
            if until(seen):
                return seen
    raise AssertionError(f"job {job_id}'s stream ended first: {[e.event for e in seen]}")


def wait_event_sync(
    client: httpx.Client, job_id: str, kind: str, *, within: float = WAIT_SECONDS
) -> Sse:
    """The first event of type `kind` in the job's `$stream`."""
    return follow_sync(client, job_id, lambda seen: seen[-1].event == kind, within=within)[-1]
