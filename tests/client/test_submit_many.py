"""`submit_many`: `POST /api/v1/tasks/{name}/$execute-many` with `{"items": [...]}` -> 202
`{"job_ids": [...]}` in item order; one invalid item is a 400 naming it by index and nothing
is queued. The end-to-end test needs a server with that route."""

from typing import Any

import httpx
import pytest

from taskexec_client import BatchItem, Client, RetryPolicy, ValidationFailed
from taskexec_client.core import Core
from taskexec_client.protocol import Outcome, Send
from tests.client.test_protocol import drive
from tests.e2e.conftest import ServerProcess


def test_each_item_gets_its_own_key_and_the_shared_options() -> None:
    items: list[dict[str, Any] | BatchItem] = [
        {"a": 1},
        BatchItem({"a": 2}, {"priority": 9}, idempotency_key="k-2"),
        {"a": 3},
    ]

    call = Core(RetryPolicy()).submit_many_call("add", items, {"priority": 1, "retries": 2})

    assert (call.method, call.path) == ("POST", "/api/v1/tasks/add/$execute-many")
    body = call.json["items"]
    assert [item["params"] for item in body] == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert [item["priority"] for item in body] == [1, 9, 1]
    assert {item["retries"] for item in body} == {2}
    keys = [item["idempotency_key"] for item in body]
    assert keys[1] == "k-2"
    assert len(set(keys)) == 3


def test_a_retried_batch_sends_the_same_keys() -> None:
    flow = Core(RetryPolicy(attempts=3, backoff=0.01)).submit_many("add", [{"a": 1}, {"a": 2}])
    outcomes: list[Outcome] = [
        httpx.ReadError("reset"),
        httpx.Response(202, json={"job_ids": ["J1", "J2"]}),
    ]

    commands, job_ids = drive(flow, outcomes)

    assert job_ids == ["J1", "J2"]
    sends = [c.call.json for c in commands if isinstance(c, Send)]
    assert len(sends) == 2
    assert sends[0] == sends[1]


@pytest.mark.e2e
def test_submit_many_queues_every_item_in_order(live_server: ServerProcess) -> None:
    with Client(live_server.base_url) as client:
        job_ids = client.submit_many("add", [{"a": 1, "b": 2}, {"a": 3, "b": 4}])
        assert len(job_ids) == 2
        assert [client.wait(job_id, timeout=30).params for job_id in job_ids] == [
            {"a": 1, "b": 2},
            {"a": 3, "b": 4},
        ]
        assert [client.result(job_id) for job_id in job_ids] == [{"sum": 3}, {"sum": 7}]

        with pytest.raises(ValidationFailed) as caught:
            client.submit_many("add", [{"a": 1, "b": 1}, {"a": "x", "b": 1}])
        assert any(".".join(e["loc"]).startswith("items.1.params") for e in caught.value.errors)
        assert client.jobs(task="add").total == 2
