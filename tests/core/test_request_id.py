"""Request ids: taken from X-Request-ID when sane or made, echoed, and carried by the jobs a
request creates into the log records of their tasks."""

import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from app.core.clock import ULID_PATTERN
from app.core.logging import ContextFilter
from app.db.database import Database
from app.jobs.context import JobContext
from app.jobs.models import Job
from app.jobs.scheduler import JobScheduler
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import wait_for_job

HEADER = "X-Request-ID"
PLAIN_LOGGER = "tests.core.request_task"


class Collector(logging.Handler):
    """Keeps records as a service handler sees them (with the log context filled in)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(ContextFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def find(self, message: str) -> logging.LogRecord:
        matches = [r for r in self.records if r.getMessage() == message]
        assert len(matches) == 1, [r.getMessage() for r in self.records]
        return matches[0]


@pytest.fixture
def collector() -> Iterator[Collector]:
    root = logging.getLogger()
    handler = Collector()
    quiet = [logging.getLogger(name) for name in (PLAIN_LOGGER, "app.jobs.store")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


async def stored_request_id(database_url: str, job_id: str) -> str | None:
    database = Database(database_url)
    try:
        async with database.session() as session:
            job = await session.get(Job, job_id)
    finally:
        await database.dispose()
    assert job is not None
    return job.request_id


@pytest.mark.parametrize("supplied", ["abc", "client-req_1.2:3", "A" * 100])
async def test_a_sane_request_id_is_echoed(client: httpx.AsyncClient, supplied: str) -> None:
    ok = await client.get("/health", headers={HEADER: supplied})
    missing = await client.get("/api/v1/tasks/nope", headers={HEADER: supplied})

    assert ok.headers[HEADER] == supplied
    assert missing.status_code == 404
    assert missing.headers[HEADER] == supplied


@pytest.mark.parametrize(
    "supplied", ["has space", "A" * 101, "slash/inside", 'quote"', "semi;colon", "ünïcode"]
)
async def test_an_insane_request_id_is_replaced(client: httpx.AsyncClient, supplied: str) -> None:
    response = await client.get("/health", headers=[(HEADER.encode(), supplied.encode())])

    echoed = response.headers[HEADER]
    assert echoed != supplied
    assert re.fullmatch(ULID_PATTERN, echoed)


async def test_without_a_request_id_each_request_gets_a_new_one(client: httpx.AsyncClient) -> None:
    first = (await client.get("/health")).headers[HEADER]
    second = (await client.get("/api/v1/tasks")).headers[HEADER]

    assert re.fullmatch(ULID_PATTERN, first)
    assert re.fullmatch(ULID_PATTERN, second)
    assert first != second


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_task_log_records_carry_the_request_and_job_ids(
    client_factory: ClientFactory,
    database_url: str,
    registry: type[TaskRegistry],
    collector: Collector,
    kind: str,
) -> None:
    def emit(ctx: JobContext) -> None:
        ctx.logger.info("through the context")
        logging.getLogger(PLAIN_LOGGER).info("through logging")

    async def traced_async(ctx: JobContext) -> None:
        emit(ctx)

    def traced_sync(ctx: JobContext) -> None:
        emit(ctx)

    registry.register_function("traced", traced_async if kind == "async" else traced_sync)
    async with client_factory() as client:
        response = await client.post("/api/v1/tasks/traced/$execute", headers={HEADER: "req-42"})
        assert response.status_code == 202, response.text
        assert response.headers[HEADER] == "req-42"
        job_id = response.json()["job_id"]
        assert (await wait_for_job(client, job_id))["status"] == "completed"

    for message in ("through the context", "through logging"):
        record = collector.find(message)
        assert getattr(record, "request_id", None) == "req-42"
        assert getattr(record, "job_id", None) == job_id
        assert getattr(record, "task_name", None) == "traced"
    queued = [r for r in collector.records if r.getMessage() == "job queued"]
    assert [getattr(r, "request_id", None) for r in queued] == ["req-42"]
    assert await stored_request_id(database_url, job_id) == "req-42"


async def test_a_job_queued_by_a_task_keeps_the_request_id(
    client_factory: ClientFactory,
    database_url: str,
    registry: type[TaskRegistry],
    collector: Collector,
) -> None:
    async def child(ctx: JobContext) -> None:
        ctx.logger.info("child speaking")

    async def parent(scheduler: JobScheduler) -> str:
        queued = await scheduler.submit("child")
        return queued.id

    registry.register_function("child", child)
    registry.register_function("parent", parent)
    async with client_factory() as client:
        response = await client.post(
            "/api/v1/tasks/parent/$execute", params={"wait": 10}, headers={HEADER: "req-7"}
        )
        assert response.status_code == 200, response.text
        child_id = response.json()["artifact"]["data"]["result"]
        assert (await wait_for_job(client, child_id))["status"] == "completed"

    record = collector.find("child speaking")
    assert getattr(record, "request_id", None) == "req-7"
    assert getattr(record, "job_id", None) == child_id
    assert await stored_request_id(database_url, child_id) == "req-7"


async def test_jobs_of_different_requests_keep_their_own_ids(
    client_factory: ClientFactory,
    database_url: str,
    registry: type[TaskRegistry],
    collector: Collector,
) -> None:
    async def echo(tag: str, ctx: JobContext) -> None:
        ctx.logger.info("tag %s", tag)

    registry.register_function("echo", echo)
    async with client_factory() as client:
        ids = {}
        for tag in ("one", "two"):
            response = await client.post(
                "/api/v1/tasks/echo/$execute",
                json={"params": {"tag": tag}},
                headers={HEADER: f"req-{tag}"},
            )
            ids[tag] = response.json()["job_id"]
        untagged = await client.post("/api/v1/tasks/echo/$execute", json={"params": {"tag": "x"}})
        ids["x"] = untagged.json()["job_id"]
        for job_id in ids.values():
            await wait_for_job(client, job_id)

    for tag in ("one", "two"):
        assert getattr(collector.find(f"tag {tag}"), "request_id", None) == f"req-{tag}"
    # Without a header the generated id is stored and logged just the same.
    generated = untagged.headers[HEADER]
    assert getattr(collector.find("tag x"), "request_id", None) == generated
    assert await stored_request_id(database_url, ids["x"]) == generated
