"""The client's I/O-free core: flows driven by hand with the answers a server would give.

Only the process edge is played here (HTTP answers, connection errors); every flow is the one
`Client` and `AsyncClient` run.
"""

import random
from collections.abc import Generator
from typing import Any

import httpx
import pytest

from taskexec_client import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    NotFound,
    RetryPolicy,
    ServerUnavailable,
    TaskexecError,
    Unauthorized,
    ValidationFailed,
)
from taskexec_client.core import Core
from taskexec_client.protocol import Command, Outcome, Send, Sleep
from taskexec_client.sse import SSEDecoder

JOB_ID = "01M8KA5HR2NMKESH1Y16DDXJCW"
JOB: dict[str, Any] = {
    "id": JOB_ID,
    "task_name": "add",
    "status": "pending",
    "params": {"a": 1},
    "created_at": "2026-11-29T09:28:51.123456+00:00",
    "attempts": 0,
    "error": None,
    "progress": None,
    "progress_message": None,
    "result": None,
}


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def problem(status: int, code: str, **extra: Any) -> httpx.Response:
    body = {"type": f"urn:taskexec:problem:{code}", "title": code, "status": status}
    return answer(status, {**body, "detail": f"{code} detail", "code": code, **extra})


def drive(
    flow: Generator[Command, Outcome, Any], outcomes: list[Outcome]
) -> tuple[list[Command], Any]:
    """Send `outcomes` in turn for the flow's `Send`s (None for its `Sleep`s); return every
    command it gave and its value. Its exception, if it raises, goes to the caller."""
    commands: list[Command] = []
    outcome: Outcome = None
    pending = list(outcomes)
    while True:
        try:
            command = flow.send(outcome)
        except StopIteration as stop:
            return commands, stop.value
        commands.append(command)
        outcome = pending.pop(0) if isinstance(command, Send) else None


def run(flow: Generator[Command, Outcome, Any], outcomes: list[Outcome]) -> Any:
    return drive(flow, outcomes)[1]


def core(attempts: int = 4) -> Core:
    return Core(RetryPolicy(attempts=attempts, backoff=0.1, backoff_max=5, rng=random.Random(7)))


def test_a_read_retries_503_for_as_long_as_retry_after_asks_then_succeeds() -> None:
    outcomes: list[Outcome] = [
        answer(503, {"code": "database_unavailable"}, **{"Retry-After": "2"}),
        problem(503, "database_unavailable"),
        answer(200, JOB),
    ]
    commands, job = drive(core().get(JOB_ID), outcomes)
    sleeps = [c.seconds for c in commands if isinstance(c, Sleep)]
    assert job.id == JOB_ID
    assert len(sleeps) == 2
    assert 2.0 <= sleeps[0] <= 2.2  # Retry-After, plus at most 10 % jitter
    assert 0 <= sleeps[1] <= 0.2  # no Retry-After: full jitter up to backoff * 2


def test_every_retried_status_and_connection_error_is_retried() -> None:
    outcomes: list[Outcome] = [
        answer(429),
        answer(502),
        httpx.ReadError("reset"),
        answer(504),
        answer(200, JOB),
    ]
    assert run(core(attempts=5).get(JOB_ID), outcomes).id == JOB_ID


def test_retries_stop_after_the_policy_attempts_with_server_unavailable() -> None:
    flow = core(attempts=3).get(JOB_ID)
    with pytest.raises(ServerUnavailable) as caught:
        run(flow, [problem(503, "database_unavailable")] * 3)
    assert caught.value.status == 503
    assert caught.value.code == "database_unavailable"


def test_unreachable_server_raises_connection_failed_after_the_attempts() -> None:
    with pytest.raises(ConnectionFailed, match="after 2 tries") as caught:
        run(core(attempts=2).tasks(), [httpx.ConnectError("refused")] * 2)
    assert isinstance(caught.value, ServerUnavailable)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_a_retry_after_longer_than_backoff_max_is_not_waited_for() -> None:
    with pytest.raises(ServerUnavailable):
        run(core().get(JOB_ID), [answer(503, None, **{"Retry-After": "3600"})])


def test_submit_sends_one_generated_idempotency_key_on_every_retry() -> None:
    flow = core().submit("add", {"a": 1}, priority=3)
    outcomes: list[Outcome] = [
        httpx.ReadTimeout("no answer"),
        problem(503, "database_unavailable"),
        answer(202, {"job_id": JOB_ID, "message": "ok"}),
        answer(200, JOB),
    ]
    commands, job = drive(flow, outcomes)
    assert job.id == JOB_ID
    posts = [c.call for c in commands if isinstance(c, Send) and c.call.method == "POST"]
    assert len(posts) == 3
    keys = {call.headers["Idempotency-Key"] for call in posts}
    assert len(keys) == 1
    assert len(keys.pop()) >= 32
    assert posts[0].json == {"params": {"a": 1}, "priority": 3}


def test_two_submits_get_different_keys_and_a_given_key_is_kept() -> None:
    first = core().submit_call("add", {}, None, {})
    second = core().submit_call("add", {}, None, {})
    given = core().submit_call("add", {}, "order-1", {})
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    assert given.headers["Idempotency-Key"] == "order-1"


def test_cancel_is_not_repeated_after_a_connection_dropped_mid_request() -> None:
    with pytest.raises(ConnectionFailed):
        run(core().cancel(JOB_ID), [httpx.ReadError("reset")])


def test_cancel_is_repeated_when_it_surely_was_not_sent_or_not_processed() -> None:
    outcomes: list[Outcome] = [
        httpx.ConnectError("refused"),
        problem(503, "database_unavailable"),
        answer(200, {**JOB, "status": "canceled"}),
    ]
    assert run(core().cancel(JOB_ID), outcomes).status == "canceled"


def test_cancel_is_not_repeated_after_a_502() -> None:
    with pytest.raises(ServerUnavailable):
        run(core().cancel(JOB_ID), [answer(502)])


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        (problem(400, "bad_request"), BadRequest),
        (problem(401, "unauthorized"), Unauthorized),
        (problem(404, "not_found"), NotFound),
        (problem(409, "conflict"), Conflict),
    ],
)
def test_problem_answers_become_typed_errors(
    response: httpx.Response, kind: type[TaskexecError]
) -> None:
    with pytest.raises(kind) as caught:
        run(core().get(JOB_ID), [response])
    assert type(caught.value) is kind
    assert caught.value.detail == f"{response.json()['code']} detail"
    assert caught.value.status == response.status_code


def test_validation_failed_carries_the_per_field_errors() -> None:
    errors = [{"loc": ["params", "a"], "msg": "Input should be a valid integer", "type": "int"}]
    with pytest.raises(ValidationFailed) as caught:
        run(core().submit("add", {"a": "x"}), [problem(400, "validation_error", errors=errors)])
    assert caught.value.errors == errors
    assert isinstance(caught.value, BadRequest)


def test_an_error_without_a_problem_body_still_has_its_status() -> None:
    with pytest.raises(NotFound, match="HTTP 404") as caught:
        run(core().get(JOB_ID), [httpx.Response(404, text="<html>nope</html>")])
    assert caught.value.code is None


def test_wait_long_polls_with_the_round_and_a_read_timeout_that_covers_it() -> None:
    flow = Core(RetryPolicy(), wait_round=20).wait(JOB_ID)
    done = {**JOB, "status": "completed", "result": "A1"}
    commands, job = drive(flow, [answer(200, JOB), answer(200, done)])
    assert job.status == "completed"
    calls = [c.call for c in commands if isinstance(c, Send)]
    assert [call.params for call in calls] == [{"wait": "20"}, {"wait": "20"}]
    assert all(call.extra_read == 20 for call in calls)


def test_sse_decoder_follows_the_event_stream_rules() -> None:
    decoder = SSEDecoder()
    lines = [
        ": ping",
        "event: progress",
        'data: {"a":',
        "data:1}",
        "id: 7",
        "retry: 1000",
        "",
        "",
        "data: plain",
        "",
    ]
    events = [e for e in map(decoder.feed, lines) if e is not None]
    assert [(e.event, e.data, e.id, e.retry) for e in events] == [
        ("progress", '{"a":\n1}', "7", 1000),
        ("message", "plain", "7", 1000),
    ]
