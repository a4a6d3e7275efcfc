"""Retries against a real server whose database goes away: PostgreSQL behind a TCP proxy
that the test stops (connections refused) and starts again. The server answers 503
`database_unavailable` with `Retry-After`; the client retries reads and its keyed submit."""

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from taskexec_client import Client, RetryPolicy
from tests.client.conftest import TASK_MODULES
from tests.client.proxy import TcpProxy
from tests.e2e.conftest import ServerFactory
from tests.postgres.conftest import pg_database

__all__ = ["pg_database"]

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

OUTAGE_TIMEOUT = 60


class RetryLog(logging.Handler):
    """Collects the client's retry records; `wait_for` blocks until one matches."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(dict(record.__dict__))
            self._changed.notify_all()

    def wait_for(self, method: str, reason: str) -> None:
        def seen() -> bool:
            return any(r["method"] == method and r["reason"] == reason for r in self.records)

        with self._changed:
            assert self._changed.wait_for(seen, timeout=OUTAGE_TIMEOUT), self.records


@pytest.fixture
def retry_log() -> Iterator[RetryLog]:
    handler = RetryLog()
    logger = logging.getLogger("taskexec_client")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_reads_and_submits_ride_out_a_database_outage(
    pg_database: str,
    server_factory: ServerFactory,
    proxy_factory: type[TcpProxy],
    retry_log: RetryLog,
) -> None:
    url = make_url(pg_database)
    database = proxy_factory(url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=database.port).render_as_string(hide_password=False)
    server = server_factory(
        env={"TASKEXEC_DATABASE_URL": proxied, "TASKEXEC_TASK_MODULES": TASK_MODULES}
    )
    retry = RetryPolicy(attempts=100, backoff=0.2, backoff_max=5.0)
    with Client(server.base_url, retry=retry) as client, ThreadPoolExecutor(2) as pool:
        first = client.submit("add", {"a": 1, "b": 1})
        assert client.wait(first.id, timeout=30).status == "completed"

        database.stop()
        with httpx.Client(base_url=server.base_url, timeout=10) as raw:
            answer = raw.get(f"/api/v1/jobs/{first.id}")
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "database_unavailable"
        assert answer.headers["retry-after"] == "1"

        read = pool.submit(client.result, first.id)
        run = pool.submit(client.run, "add", {"a": 2, "b": 3}, timeout=OUTAGE_TIMEOUT)
        retry_log.wait_for("GET", "503")
        retry_log.wait_for("POST", "503")
        database.start()

        assert read.result(timeout=OUTAGE_TIMEOUT) == {"sum": 2}
        assert run.result(timeout=OUTAGE_TIMEOUT) == {"sum": 5}
        jobs = client.jobs(task="add").items
        assert sorted(job.params["a"] for job in jobs) == [1, 2]
