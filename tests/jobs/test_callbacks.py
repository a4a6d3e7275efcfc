"""Completion callbacks: allowed hosts, a listener that is down at first, Standard Webhooks
signatures, retries with backoff, giving up, and two dispatchers over one database."""

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from app.core.clock import utcnow
from app.core.errors import BadRequestError
from app.db.database import Database
from app.jobs.callback_store import add_delivery
from app.jobs.callbacks import CallbackConfig, CallbackDispatcher, check_callback_url
from app.jobs.events import EventBus
from app.jobs.models import JobStatus
from app.jobs.repository import JobRepository
from app.tasks.registry import TaskRegistry
from tests.callback_receiver import CallbackReceiver
from tests.conftest import ClientFactory
from tests.helpers import apoll_until, assert_problem, events_of
from tests.jobs.helpers import insert_job

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST = {
    "callback_allowed_hosts": ["127.0.0.1"],
    "callback_backoff_seconds": 0.1,
    "callback_backoff_max_seconds": 0.3,
    "callback_poll_interval": 0.2,
    "callback_timeout_seconds": 2.0,
}


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(autouse=True)
def tasks(registry: type[TaskRegistry]) -> None:
    @registry.register("double")
    async def double(n: int) -> int:
        return 2 * n


@pytest.mark.parametrize(
    ("url", "allowed", "problem"),
    [
        ("http://127.0.0.1/x", [], "disabled"),
        ("http://evil.test/x", ["127.0.0.1"], "not in"),
        ("ftp://127.0.0.1/x", ["127.0.0.1"], "absolute"),
        ("/relative", ["127.0.0.1"], "absolute"),
        ("http://u:p@127.0.0.1/x", ["127.0.0.1"], "credentials"),
        ("https://example.com/x", ["*.example.com"], "not in"),
        ("https://badexample.com/x", ["*.example.com"], "not in"),
    ],
)
def test_refused_callback_urls(url: str, allowed: list[str], problem: str) -> None:
    with pytest.raises(BadRequestError, match=problem):
        check_callback_url(url, allowed)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:9/x", ["127.0.0.1"]),
        ("https://hooks.example.com/x", ["*.example.com"]),
        ("https://HOOKS.example.com/x", ["hooks.example.com"]),
    ],
)
def test_accepted_callback_urls(url: str, allowed: list[str]) -> None:
    assert check_callback_url(url, allowed) == url


async def test_submit_refuses_hosts_outside_the_list(client_factory: ClientFactory) -> None:
    body = {"params": {"n": 1}, "callback_url": "http://evil.test/x"}
    async with client_factory() as client:
        disabled = await client.post("/api/v1/tasks/double/$execute", json=body)
    async with client_factory(callback_allowed_hosts=["127.0.0.1"]) as client:
        refused = await client.post("/api/v1/tasks/double/$execute", json=body)
        total = (await client.get("/api/v1/jobs")).json()["total"]

    assert "disabled" in assert_problem(disabled, 400, "bad_request")["detail"]
    assert "evil.test" in assert_problem(refused, 400, "bad_request")["detail"]
    assert total == 0


async def _events_of(client: httpx.AsyncClient, job_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in await events_of(client, job_id) if e["type"] == kind]


async def test_a_listener_that_comes_up_later_gets_one_signed_delivery(
    client_factory: ClientFactory, receiver: CallbackReceiver
) -> None:
    settings = {**FAST, "callback_secret": SECRET, "callback_max_attempts": 100}
    async with client_factory(**settings) as client:
        response = await client.post(
            "/api/v1/tasks/double/$execute",
            json={"params": {"n": 21}, "callback_url": receiver.url},
        )
        job_id = response.json()["job_id"]

        async def failed_twice() -> bool:
            return len(await _events_of(client, job_id, "callback_attempted")) >= 2

        await apoll_until(failed_twice, what="two refused deliveries")
        receiver.start()
        [delivery] = await asyncio.to_thread(receiver.wait_for, 1)

        async def delivered() -> bool:
            return bool(await _events_of(client, job_id, "callback_delivered"))

        await apoll_until(delivered, what="the callback_delivered event")
        attempts = await _events_of(client, job_id, "callback_attempted")
        job = (await client.get(f"/api/v1/jobs/{job_id}")).json()

    payload = Webhook(SECRET).verify(delivery.body, delivery.headers)
    assert delivery.path == "/hook"
    assert delivery.headers["webhook-id"] == f"msg_{job_id}"
    assert payload["type"] == "job.completed"
    assert payload["data"]["id"] == job_id
    assert payload["data"]["result"] == job["result"]
    assert payload["data"]["status"] == "completed"
    refused, last = attempts[:-1], attempts[-1]
    assert all(e["data"]["status_code"] is None and e["data"]["error"] for e in refused)
    assert [e["data"]["attempt"] for e in attempts] == list(range(1, len(attempts) + 1))
    assert (last["data"]["status_code"], last["data"]["error"]) == (200, None)
    assert len(receiver.received) == 1
    # A forged or altered body does not verify.
    with pytest.raises(Exception, match="ignature"):
        Webhook(SECRET).verify(delivery.body.replace("21", "22"), delivery.headers)


async def test_it_gives_up_after_the_last_attempt(
    client_factory: ClientFactory, receiver: CallbackReceiver
) -> None:
    receiver.status = 500
    receiver.start()
    async with client_factory(**FAST, callback_max_attempts=3) as client:
        response = await client.post(
            "/api/v1/tasks/double/$execute",
            json={"params": {"n": 1}, "callback_url": receiver.url},
        )
        job_id = response.json()["job_id"]

        async def gave_up() -> bool:
            return bool(await _events_of(client, job_id, "callback_failed"))

        await apoll_until(gave_up, what="the callback_failed event")
        attempts = await _events_of(client, job_id, "callback_attempted")

    assert [e["data"]["status_code"] for e in attempts] == [500, 500, 500]
    assert len(receiver.received) == 3
    # Unsigned without a secret, but with the message id and time.
    assert "webhook-signature" not in receiver.received[0].headers
    assert receiver.received[0].headers["webhook-id"] == f"msg_{job_id}"
    assert json.loads(receiver.received[0].body)["data"]["id"] == job_id


async def test_two_dispatchers_deliver_each_callback_once(
    database: Database, receiver: CallbackReceiver
) -> None:
    receiver.start()
    job_ids = []
    for _ in range(20):
        job = await insert_job(
            database, status=JobStatus.COMPLETED, finished_at=utcnow(), callback_url=receiver.url
        )
        async with database.transaction() as session:
            await add_delivery(session, job.id, utcnow())
        job_ids.append(job.id)
    config = CallbackConfig(allowed_hosts=["127.0.0.1"], timeout=20, backoff=0)
    dispatchers = [
        CallbackDispatcher(database, config, owner=f"d{n}", bus=EventBus()) for n in range(2)
    ]
    try:
        # Both claim at the same time, again and again: each delivery goes out once.
        counts = await asyncio.gather(*(d.deliver_due() for d in dispatchers for _ in range(3)))
        await asyncio.to_thread(receiver.wait_for, 20)
    finally:
        for dispatcher in dispatchers:
            await dispatcher.stop()

    delivered = sorted(json.loads(r.body)["data"]["id"] for r in receiver.received)
    assert delivered == sorted(job_ids)
    assert sum(counts) == 20


async def test_a_host_removed_from_the_list_is_never_called(
    database: Database, receiver: CallbackReceiver
) -> None:
    receiver.start()
    job = await insert_job(
        database, status=JobStatus.COMPLETED, finished_at=utcnow(), callback_url=receiver.url
    )
    async with database.transaction() as session:
        await add_delivery(session, job.id, utcnow())
    config = CallbackConfig(allowed_hosts=["hooks.example.com"])
    dispatcher = CallbackDispatcher(database, config, owner="d", bus=EventBus())
    try:
        assert await dispatcher.deliver_due() == 1
        assert await dispatcher.deliver_due() == 0
    finally:
        await dispatcher.stop()
    async with database.read_session() as session:
        events, _ = await JobRepository(session).events_page(job.id, types=None, limit=10, offset=0)

    assert [e.type for e in events] == ["callback_attempted", "callback_failed"]
    assert "no longer in TASKEXEC_CALLBACK_ALLOWED_HOSTS" in events[1].data["error"]
    assert receiver.received == []
