"""Completion callbacks across a restart of the real server: the listener is down while the
first server runs, comes up while the server is stopped, and the restarted server delivers."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.callback_receiver import CallbackReceiver
from tests.e2e.conftest import ServerFactory, wait_job
from tests.helpers import poll_until

pytestmark = pytest.mark.e2e

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENV = {
    "TASKEXEC_CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
    "TASKEXEC_CALLBACK_SECRET": SECRET,
    "TASKEXEC_CALLBACK_BACKOFF_SECONDS": "0.2",
    "TASKEXEC_CALLBACK_BACKOFF_MAX_SECONDS": "0.5",
    "TASKEXEC_CALLBACK_POLL_INTERVAL": "0.2",
    "TASKEXEC_CALLBACK_MAX_ATTEMPTS": "100",
}


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()


def _events(client: httpx.Client, job_id: str, kind: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/jobs/{job_id}/events", params={"limit": 500})
    assert response.status_code == 200, response.text
    return [e for e in response.json()["items"] if e["type"] == kind]


def test_a_callback_survives_a_restart_and_is_delivered_once(
    server_factory: ServerFactory, receiver: CallbackReceiver
) -> None:
    server = server_factory(env=ENV)
    with server.client() as client:
        response = client.post(
            "/api/v1/tasks/greet/$execute",
            json={"params": {"name": "Ada"}, "callback_url": receiver.url},
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        assert wait_job(client, job_id)["status"] == "completed"
        poll_until(
            lambda: len(_events(client, job_id, "callback_attempted")) >= 2,
            within=20,
            what="refused deliveries",
        )
    server.terminate()
    receiver.start()
    server.restart()
    [delivery] = receiver.wait_for(1)
    with server.client() as client:
        poll_until(
            lambda: bool(_events(client, job_id, "callback_delivered")),
            within=20,
            what="the callback_delivered event",
        )
        attempts = _events(client, job_id, "callback_attempted")
        job = client.get(f"/api/v1/jobs/{job_id}").json()

    payload = Webhook(SECRET).verify(delivery.body, delivery.headers)
    assert (payload["type"], payload["data"]["id"]) == ("job.completed", job_id)
    assert payload["data"]["result"] == job["result"]
    # Attempt numbers carry on across the restart: the outbox row kept them.
    assert [e["data"]["attempt"] for e in attempts] == list(range(1, len(attempts) + 1))
    assert len(attempts) >= 3
    assert attempts[-1]["data"]["status_code"] == 200
    assert len(receiver.received) == 1
