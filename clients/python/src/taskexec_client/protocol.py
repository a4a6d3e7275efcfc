"""The client without I/O: every operation is a generator ("flow") of commands.

A flow yields commands (send this request, sleep this long, open a stream, read its next line)
and is sent back each command's outcome; it returns the operation's value or raises. The sync
`Client` and the `AsyncClient` each only perform commands (`taskexec_client._io`), so retries,
waiting in rounds, SSE resumption and error mapping are written once, here and in `core.py`.
"""

import json
import logging
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx

from taskexec_client.config import RETRY_STATUSES, RetryPolicy, parse_retry_after
from taskexec_client.errors import ConnectionFailed, TaskexecError, error_for

logger = logging.getLogger("taskexec_client")

T = TypeVar("T")
E = TypeVar("E")

# Connection errors after which the request surely never reached the server.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
# Answers that say the request was not processed, so even a non-idempotent call may repeat it.
NOT_PROCESSED = frozenset({429, 503})


@dataclass(frozen=True)
class Call:
    """One HTTP request, described.

    `retry="always"` marks a call that is safe to repeat (reads, and writes under an
    idempotency key); `"unsent"` one that is repeated only when it surely had no effect.
    `extra_read` seconds are added to the read timeout (a long poll waits that long);
    `read_timeout` replaces it (a stream's longest silence).
    """

    method: str
    path: str
    params: dict[str, str] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    retry: Literal["always", "unsent"] = "always"
    extra_read: float = 0.0
    read_timeout: float | None = None


class Command:
    """Something a flow asks its driver to do."""


@dataclass(frozen=True)
class Send(Command):
    """Send the call and read the whole answer -> `httpx.Response` | `httpx.TransportError`."""

    call: Call


@dataclass(frozen=True)
class Sleep(Command):
    """Sleep -> None."""

    seconds: float


@dataclass(frozen=True)
class Open(Command):
    """Send the call and keep the body open (read fully unless the status is 200) ->
    `httpx.Response` | `httpx.TransportError`."""

    call: Call


@dataclass(frozen=True)
class ReadLine(Command):
    """The next line of an open stream -> `str`, None at its end, or `httpx.TransportError`."""

    response: httpx.Response


@dataclass(frozen=True)
class Close(Command):
    """Close an open stream -> None."""

    response: httpx.Response


Outcome = httpx.Response | httpx.TransportError | str | None
Flow = Generator[Command, Outcome, T]
Stream = Generator[Command | E, Outcome, None]


def request_timeout(base: httpx.Timeout, call: Call) -> httpx.Timeout:
    """The timeouts of one call: the client's, with a long poll's wait added to the read."""
    read = call.read_timeout if call.read_timeout is not None else base.read
    if read is not None:
        read += call.extra_read
    return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)


def build_request(http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
    """The `httpx.Request` of a call, on the sync or async client's base URL and headers."""
    return http.build_request(
        call.method,
        call.path,
        params=call.params,
        json=call.json,
        headers=call.headers,
        timeout=request_timeout(http.timeout, call),
    )


def response_of(outcome: Outcome) -> httpx.Response:
    if not isinstance(outcome, httpx.Response):
        raise TypeError(f"expected an httpx.Response, the driver sent {outcome!r}")
    return outcome


def decode(response: httpx.Response) -> Any:
    """The JSON body of an answer, or None if it has none."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def retry_delay(
    call: Call, policy: RetryPolicy, failures: int, outcome: httpx.Response | httpx.TransportError
) -> float | None:
    """Seconds to wait before trying `call` again after this failed outcome, or None."""
    if isinstance(outcome, httpx.TransportError):
        if call.retry == "unsent" and not isinstance(outcome, NOT_SENT):
            return None
        return policy.delay(failures)
    allowed = RETRY_STATUSES if call.retry == "always" else NOT_PROCESSED
    if outcome.status_code not in allowed:
        return None
    return policy.delay(failures, parse_retry_after(outcome.headers.get("retry-after")))


def failure(call: Call, outcome: httpx.Response | httpx.TransportError, tries: int) -> Exception:
    """The exception for a call that failed for good."""
    if isinstance(outcome, httpx.TransportError):
        error: TaskexecError = ConnectionFailed(
            f"{call.method} {call.path}: {type(outcome).__name__}: {outcome} "
            f"(after {tries} {'try' if tries == 1 else 'tries'})"
        )
        error.__cause__ = outcome
        return error
    return error_for(outcome.status_code, decode(outcome))


def log_retry(call: Call, outcome: httpx.Response | httpx.TransportError, delay: float) -> None:
    reason = (
        type(outcome).__name__
        if isinstance(outcome, httpx.TransportError)
        else str(outcome.status_code)
    )
    logger.info(
        "%s %s failed (%s); retrying in %.2f s",
        call.method,
        call.path,
        reason,
        delay,
        extra={"method": call.method, "path": call.path, "reason": reason, "delay": delay},
    )


def send(call: Call, policy: RetryPolicy) -> Flow[httpx.Response]:
    """Send `call` until it succeeds, retrying what may be retried; raise the typed error."""
    failures = 0
    while True:
        outcome = yield Send(call)
        if not isinstance(outcome, httpx.TransportError):
            outcome = response_of(outcome)
            if outcome.is_success:
                return outcome
        failures += 1
        delay = retry_delay(call, policy, failures, outcome)
        if delay is None:
            raise failure(call, outcome, failures)
        log_retry(call, outcome, delay)
        yield Sleep(delay)
