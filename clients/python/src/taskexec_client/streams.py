"""Following a job's `$stream` (Server-Sent Events), resuming after dropped connections."""

import json

import httpx

from taskexec_client.config import RetryPolicy
from taskexec_client.errors import NotFound
from taskexec_client.models import LOG_EVENTS, Job, JobEvent, LogLine
from taskexec_client.protocol import (
    Call,
    Close,
    Command,
    Flow,
    Open,
    ReadLine,
    Sleep,
    Stream,
    failure,
    log_retry,
    response_of,
    retry_delay,
    send,
)
from taskexec_client.sse import SSEDecoder


def follow_events(
    job_path: str, after: int, policy: RetryPolicy, read_timeout: float
) -> Stream[JobEvent]:
    """The job's events after `after`, live, ending with its terminal event.

    When the connection drops, it reconnects with `Last-Event-ID` set to the last event seen,
    so no event is lost or repeated; `policy` bounds the tries in a row that bring no event.
    """
    last = after
    failures = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last:
            headers["Last-Event-ID"] = str(last)
        call = Call("GET", f"{job_path}/$stream", headers=headers, read_timeout=read_timeout)
        opened = yield Open(call)
        if isinstance(opened, httpx.TransportError) or response_of(opened).status_code != 200:
            failures += 1
            refused = opened if isinstance(opened, httpx.TransportError) else response_of(opened)
            delay = retry_delay(call, policy, failures, refused)
            if delay is None:
                raise failure(call, refused, failures)
            log_retry(call, refused, delay)
            yield Sleep(delay)
            continue
        response = response_of(opened)
        decoder = SSEDecoder()
        while True:
            line = yield ReadLine(response)
            if line is None or isinstance(line, httpx.TransportError):
                break
            sse = decoder.feed(str(line))
            if sse is None:
                continue
            event = JobEvent.from_json(json.loads(sse.data))
            if event.seq <= last:
                continue
            last = event.seq
            failures = 0
            yield event
            if event.terminal:
                yield Close(response)
                return
        yield Close(response)
        if line is None and (yield from _ended(job_path, policy)):
            return
        failures += 1
        lost = line if isinstance(line, httpx.TransportError) else httpx.RemoteProtocolError("")
        delay = policy.delay(failures)
        if delay is None:
            raise failure(call, lost, failures)
        log_retry(call, lost, delay)
        yield Sleep(delay)


def _ended(job_path: str, policy: RetryPolicy) -> Flow[bool]:
    """After a stream ended without a terminal event: is there nothing more to follow?
    (The job was deleted, or finished before it had events.)"""
    try:
        response = yield from send(Call("GET", job_path), policy)
    except NotFound:
        return True
    return Job.from_json(response.json()).finished


def log_lines(events: Stream[JobEvent]) -> Stream[LogLine]:
    """The log lines among a stream of events."""
    outcome = None
    try:
        while True:
            try:
                item = events.send(outcome)
            except StopIteration:
                return
            if isinstance(item, Command):
                outcome = yield item
                continue
            outcome = None
            if item.type in LOG_EVENTS:
                yield LogLine.from_event(item)
    finally:
        events.close()
