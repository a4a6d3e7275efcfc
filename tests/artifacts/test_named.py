"""Named artifacts: `ctx.add_artifact` from async and sync tasks, the job's artifact routes,
replacement on retry, the `artifact_created` event, and the size and shape bounds."""

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.helpers import assert_problem, events_of, run_to_end

UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


async def _artifacts(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/jobs/{job_id}/artifacts")
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def _named(client: httpx.AsyncClient, job_id: str, name: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/jobs/{job_id}/artifacts/{name}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_async_task_adds_artifacts_of_each_kind(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("report")
    async def report(ctx: JobContext) -> int:
        await ctx.add_artifact("summary", {"rows": 3})
        await ctx.add_artifact("notes", "# Done", kind="markdown", description="what happened")
        await ctx.add_artifact("log", "plain text", kind="text")
        await ctx.add_artifact("rows", [{"a": 1, "b": 2}, {"a": 3, "b": 4}], kind="table")
        await ctx.add_artifact("docs", "https://example.com/x", kind="link")
        return 3

    job = await run_to_end(client, "report")
    assert job["status"] == "completed", job

    page = await _artifacts(client, job["id"])
    names = {item["name"]: item for item in page["items"]}
    assert page["total"] == 6
    assert set(names) == {"result", "summary", "notes", "log", "rows", "docs"}
    assert names["result"]["data"]["result"] == 3
    assert names["result"]["id"] == job["result"]
    assert (names["notes"]["kind"], names["notes"]["description"]) == ("markdown", "what happened")
    # A list of records is stored as columns and rows; a bare URL as a link object.
    assert names["rows"]["data"] == {"columns": ["a", "b"], "rows": [[1, 2], [3, 4]]}
    assert names["docs"]["data"] == {"url": "https://example.com/x"}
    assert (await _named(client, job["id"], "summary"))["data"] == {"rows": 3}

    created = [e for e in await events_of(client, job["id"]) if e["type"] == "artifact_created"]
    assert [e["data"]["name"] for e in created] == ["summary", "notes", "log", "rows", "docs"]
    assert created[0]["data"]["artifact_id"] == names["summary"]["id"]
    assert created[0]["data"]["replaced"] is False


async def test_a_sync_task_adds_artifacts_from_its_thread(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("crunch")
    def crunch(ctx: JobContext) -> str:
        stored = ctx.add_artifact_sync("numbers", [1, 2, 3])
        return stored.id

    job = await run_to_end(client, "crunch")
    assert job["status"] == "completed", job

    numbers = await _named(client, job["id"], "numbers")
    assert numbers["data"] == [1, 2, 3]
    result = await _named(client, job["id"], "result")
    assert result["data"]["result"] == numbers["id"]


async def test_the_blocking_variant_refuses_the_event_loop(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("wrong")
    async def wrong(ctx: JobContext) -> None:
        ctx.add_artifact_sync("x", 1)

    job = await run_to_end(client, "wrong")

    assert job["status"] == "failed"
    assert job["error"]["type"] == "RuntimeError"
    assert "await ctx.add_artifact" in job["error"]["message"]


async def test_a_retry_that_adds_the_name_again_replaces_it(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("flaky", retries=1, retry_backoff=0)
    async def flaky(ctx: JobContext) -> int:
        await ctx.add_artifact("attempt", {"attempt": ctx.attempt})
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return ctx.attempt

    job = await run_to_end(client, "flaky")
    assert (job["status"], job["attempts"]) == ("completed", 2)

    page = await _artifacts(client, job["id"])
    attempts = [item for item in page["items"] if item["name"] == "attempt"]
    assert len(attempts) == 1
    assert attempts[0]["data"] == {"attempt": 2}
    created = [e for e in await events_of(client, job["id"]) if e["type"] == "artifact_created"]
    assert [e["data"]["replaced"] for e in created] == [False, True]
    # Replaced in place: the id stays, so artifacts nested under it stay attached.
    assert (
        created[0]["data"]["artifact_id"] == created[1]["data"]["artifact_id"] == attempts[0]["id"]
    )


async def test_an_artifact_over_the_size_limit_fails_the_task_clearly(
    registry: type[TaskRegistry], client_factory: ClientFactory
) -> None:
    @registry.register("big")
    async def big(ctx: JobContext) -> None:
        await ctx.add_artifact("blob", "x" * 5000, kind="text")

    async with client_factory(max_artifact_bytes=4096) as client:
        job = await run_to_end(client, "big")
        page = await _artifacts(client, job["id"])

    assert job["status"] == "failed"
    assert job["error"]["type"] == "ArtifactTooLarge"
    assert "TASKEXEC_MAX_ARTIFACT_BYTES" in job["error"]["message"]
    assert [item["name"] for item in page["items"]] == ["result"]


async def test_shapes_names_and_parents_are_checked(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    outcomes: dict[str, str] = {}

    @registry.register("checks")
    async def checks(ctx: JobContext) -> dict[str, str]:
        attempts: dict[str, Any] = {
            "ragged table": ("t", {"columns": ["a", "b"], "rows": [[1]]}, "table", None),
            "text not str": ("t", {"x": 1}, "text", None),
            "ftp link": ("l", "ftp://example.com", "link", None),
            "unknown kind": ("k", 1, "image", None),
            "reserved name": ("result", 1, "json", None),
            "bad name": ("no spaces", 1, "json", None),
            "unknown parent": ("p", 1, "json", UNKNOWN_ID),
        }
        for label, (name, data, kind, parent) in attempts.items():
            try:
                await ctx.add_artifact(name, data, kind=kind, parent_id=parent)
            except ValueError as exc:
                outcomes[label] = type(exc).__name__
        return outcomes

    job = await run_to_end(client, "checks")

    assert job["status"] == "completed", job
    assert outcomes == dict.fromkeys(
        [
            "ragged table",
            "text not str",
            "ftp link",
            "unknown kind",
            "reserved name",
            "bad name",
            "unknown parent",
        ],
        "ArtifactInvalid",
    )
    assert (await _artifacts(client, job["id"]))["total"] == 1


async def test_job_artifact_routes_answer_problems(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("noop")
    async def noop() -> None:
        return None

    job = await run_to_end(client, "noop")

    assert_problem(await client.get(f"/api/v1/jobs/{UNKNOWN_ID}/artifacts"), 404, "not_found")
    assert_problem(await client.get(f"/api/v1/jobs/{UNKNOWN_ID}/artifacts/x"), 404, "not_found")
    missing = await client.get(f"/api/v1/jobs/{job['id']}/artifacts/nothing")
    assert "nothing" in assert_problem(missing, 404, "not_found")["detail"]
    assert_problem(await client.get(f"/api/v1/jobs/{job['id']}/artifacts/a%20b"), 400)
    assert_problem(await client.get("/api/v1/jobs/not-an-id/artifacts"), 400)


async def test_a_task_holding_a_session_adds_artifacts(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("with_session")
    async def with_session(ctx: JobContext, session: AsyncSession) -> int:
        await session.execute(text("SELECT 1"))
        await ctx.add_artifact("first", 1)
        ctx.progress(0.5)
        await ctx.add_artifact("second", 2)
        return 2

    job = await run_to_end(client, "with_session")
    names = {item["name"] for item in (await _artifacts(client, job["id"]))["items"]}

    assert job["status"] == "completed", job
    assert names == {"result", "first", "second"}
