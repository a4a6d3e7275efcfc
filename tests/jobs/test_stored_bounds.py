"""Stored bytes are bounded, through the API: results, error messages and tracebacks (in every
copy: job, attempts, events, artifact), log lines and a job's log, progress messages."""

from typing import Any

import httpx

from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import events_of, execute, get_json, log_messages, run_to_end, wait_for_job

MIB = 1024 * 1024
MARKER = "… [truncated "


def size(text: str) -> int:
    return len(text.encode("utf-8"))


def dropped_by(text: str) -> int:
    """The byte count a truncation marker in `text` reports."""
    return int(text.split(MARKER, 1)[1].split(" bytes]", 1)[0])


async def artifact_data(client: httpx.AsyncClient, artifact_id: str) -> dict[str, Any]:
    return (await get_json(client, f"/api/v1/artifacts/{artifact_id}"))["data"]  # type: ignore[no-any-return]


async def test_a_result_over_the_bound_fails_the_job_with_its_size_and_the_limit(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    @registry.register("big")
    def big(n: int) -> str:
        return "x" * n

    async with client_factory(max_result_bytes=4096) as client:
        over = await run_to_end(client, "big", {"n": 5000})
        fits = await run_to_end(client, "big", {"n": 4000})
        data = await artifact_data(client, over["result"])

    assert over["status"] == "failed"
    assert over["error"]["type"] == "ResultTooLargeError"
    assert "5002 bytes" in over["error"]["message"]
    assert "4096 bytes" in over["error"]["message"]
    assert data["result"] is None
    assert data["error"]["type"] == "ResultTooLargeError"
    assert fits["status"] == "completed"


async def test_every_copy_of_a_huge_error_is_bounded(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    message = "e" * (2 * MIB)

    @registry.register("loud", retries=1, retry_backoff=0)
    def loud() -> None:
        raise ValueError(message)

    async with client_factory(max_error_message_bytes=512, max_traceback_bytes=4096) as client:
        job_id = await execute(client, "loud")
        await wait_for_job(client, job_id)
        job = await get_json(client, f"/api/v1/jobs/{job_id}")
        page = await client.get("/api/v1/jobs", params={"limit": 50})
        events = await events_of(client, job_id)
        data = await artifact_data(client, job["result"])

    assert job["status"] == "failed"
    assert job["attempts"] == 2
    summaries = [
        job["error"],
        *(attempt["error"] for attempt in job["attempt_history"]),
        *(e["data"]["error"] for e in events if e["type"] in ("retrying", "failed")),
        {"type": data["error"]["type"], "message": data["error"]["message"]},
    ]
    assert len(summaries) == 6
    for summary in summaries:
        assert summary["type"] == "ValueError"
        shown = summary["message"]
        assert size(shown) <= 512
        assert shown.startswith("e" * 400)
        assert size(shown.split(MARKER)[0]) + dropped_by(shown) == len(message)
    traceback = data["error"]["traceback"]
    assert size(traceback) <= 4096
    assert traceback.startswith("Traceback (most recent call last):")
    assert MARKER in traceback
    assert page.status_code == 200
    assert len(page.content) < 8192


async def test_log_lines_are_cut_and_a_jobs_log_is_bounded_in_bytes(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    line = "L" * (64 * 1024)

    @registry.register("chatty")
    def chatty(lines: int, ctx: JobContext) -> None:
        for n in range(lines):
            ctx.logger.info("%d %s", n, line)

    async with client_factory(max_log_line_bytes=1024, max_log_bytes=8192) as client:
        job_id = await execute(client, "chatty", {"lines": 100})
        assert (await wait_for_job(client, job_id))["status"] == "completed"
        messages = await log_messages(client, job_id)
        events = await events_of(client, job_id)

    [note] = [e["data"] for e in events if e["type"] == "log_truncated"]
    kept = messages[:-1]
    assert len(kept) == note["kept"] == 8
    for n, message in enumerate(kept):
        assert size(message) <= 1024
        assert message.startswith(f"{n} LLL")
        assert message.endswith("LLL")
        assert size(message) - len(MARKER) - 10 + dropped_by(message) >= len(line)
    assert sum(size(message) for message in kept) <= 8192
    assert note["dropped"] == 92
    assert note["shortened"] == 8
    # Whole lines dropped, and what the markers of the shortened ones count.
    dropped_lines = sum(len(f"{n} ") + len(line) for n in range(8, 100))
    assert note["dropped_bytes"] == dropped_lines + sum(dropped_by(m) for m in kept)
    assert "92" in messages[-1]
    assert "truncated" in messages[-1]


async def test_the_log_byte_bound_holds_for_the_whole_job_across_retries(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    @registry.register("retried", retries=1, retry_backoff=0)
    def retried(ctx: JobContext) -> None:
        for n in range(5):
            ctx.logger.info("attempt %d line %d %s", ctx.attempt, n, "x" * 980)
        if ctx.attempt == 1:
            raise ConnectionError("again")

    async with client_factory(max_log_line_bytes=1024, max_log_bytes=8000) as client:
        job_id = await execute(client, "retried")
        assert (await wait_for_job(client, job_id))["status"] == "completed"
        messages = await log_messages(client, job_id)
        events = await events_of(client, job_id)

    kept = [m for m in messages if m.startswith("attempt")]
    # 997 bytes a line: 8 fit in 8000, 5 of the first attempt and 3 of the second.
    assert [m[:17] for m in kept] == [f"attempt 1 line {n} " for n in range(5)] + [
        f"attempt 2 line {n} " for n in range(3)
    ]
    assert sum(size(m) for m in kept) <= 8000
    [note] = [e["data"] for e in events if e["type"] == "log_truncated"]
    assert (note["dropped"], note["kept"]) == (2, 8)


async def test_a_progress_message_is_bounded(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    @registry.register("progressing")
    async def progressing(ctx: JobContext) -> None:
        ctx.progress(0.5, message="p" * MIB)

    async with client_factory(max_error_message_bytes=300) as client:
        job = await run_to_end(client, "progressing")
        events = await events_of(client, job["id"])

    [progress] = [e["data"] for e in events if e["type"] == "progress"]
    for message in (job["progress_message"], progress["message"]):
        assert size(message) <= 300
        assert dropped_by(message) == MIB - size(message.split(MARKER)[0])
