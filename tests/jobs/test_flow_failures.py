"""Flows that fail, are canceled or time out, on SQLite and PostgreSQL."""

import asyncio
from typing import Any

from app.jobs.context import JobContext
from app.jobs.flows import ChildJobFailed
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.jobs.flow_helpers import (
    WAIT,
    children_of,
    finished,
    register_double,
    result_of,
    run,
)


async def test_an_uncaught_child_failure_fails_the_parent_and_cancels_the_rest(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    @registry.register("breaks")
    async def breaks() -> None:
        raise ValueError("bad chunk")

    @registry.register("hangs")
    async def hangs() -> None:
        await asyncio.Event().wait()

    @registry.register("parent")
    async def parent(ctx: JobContext) -> None:
        slow = ctx.map("hangs", [{}, {}])
        await ctx.gather(*slow, ctx.spawn("breaks"))

    async with client_factory(max_concurrency=4) as client:
        job = await run(client, "parent", {})
        children = await children_of(client, job["id"])
        artifact = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()
        for child in children:
            await finished(client, child["id"])
        children = await children_of(client, job["id"])
    assert job["status"] == "failed"
    assert job["error"]["type"] == "ChildJobFailed"
    broken = next(c for c in children if c["task_name"] == "breaks")
    assert broken["id"] in job["error"]["message"]
    assert "ValueError: bad chunk" in job["error"]["message"]
    assert "ChildJobFailed" in artifact["data"]["error"]["traceback"]
    assert sorted(c["status"] for c in children) == ["canceled", "canceled", "failed"]


async def test_return_exceptions_collects_failures_in_place(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    register_double(registry)

    @registry.register("breaks")
    def breaks(n: int) -> None:
        raise KeyError(n)

    @registry.register("parent")
    async def parent(ctx: JobContext) -> list[Any]:
        children = [ctx.spawn("double", {"n": 1}), ctx.spawn("breaks", {"n": 7}, key="bad")]
        values = await ctx.gather(*children, return_exceptions=True)
        return [
            {"failed": v.job_id, "type": v.error_type, "status": v.status}
            if isinstance(v, ChildJobFailed)
            else v
            for v in values
        ]

    async with client_factory() as client:
        job = await run(client, "parent", {})
        value = await result_of(client, job)
        children = {c["task_name"]: c for c in await children_of(client, job["id"])}
    assert job["status"] == "completed", job
    assert value == [
        2,
        {"failed": children["breaks"]["id"], "type": "KeyError", "status": "failed"},
    ]


async def test_cancelling_a_parent_cancels_every_unfinished_descendant(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    started = asyncio.Event()

    @registry.register("leaf")
    async def leaf() -> None:
        started.set()
        await asyncio.Event().wait()

    @registry.register("middle")
    async def middle(ctx: JobContext) -> None:
        await ctx.gather(ctx.spawn("leaf"), *ctx.map("leaf", [{}, {}]))

    @registry.register("top")
    async def top(ctx: JobContext) -> None:
        await ctx.spawn("middle")

    async with client_factory(max_concurrency=2) as client:
        response = await client.post("/api/v1/tasks/top/$execute")
        top_id = response.json()["job_id"]
        await asyncio.wait_for(started.wait(), WAIT)
        canceled = await client.post(f"/api/v1/jobs/{top_id}/$cancel")
        assert canceled.status_code == 200, canceled.text
        root = await finished(client, top_id)
        tree = (await client.get(f"/api/v1/jobs/{top_id}/tree")).json()
    nodes: list[dict[str, Any]] = []
    stack = [tree["root"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node["children"])
    assert root["status"] == "canceled"
    assert len(nodes) == 5
    assert {node["status"] for node in nodes} == {"canceled"}


async def test_a_parents_timeout_covers_its_whole_flow(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    @registry.register("slow")
    async def slow() -> None:
        await asyncio.Event().wait()

    @registry.register("parent", timeout=0.5)
    async def parent(ctx: JobContext) -> None:
        await ctx.spawn("slow", timeout=60)

    async with client_factory() as client:
        job = await run(client, "parent", {})
        (child,) = await children_of(client, job["id"])
        child = await finished(client, child["id"])
    assert job["status"] == "failed"
    assert job["error"]["type"] == "JobTimeoutError"
    assert child["status"] == "canceled"


async def test_cancelling_one_child_wakes_its_waiting_parent_with_the_failure(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    started = asyncio.Event()

    @registry.register("hangs")
    async def hangs() -> None:
        started.set()
        await asyncio.Event().wait()

    @registry.register("parent")
    async def parent(ctx: JobContext) -> str:
        child = ctx.spawn("hangs", key="stuck")
        try:
            await child
        except ChildJobFailed as failure:
            return f"{failure.status}: {failure.error_type}"
        return "not reached"

    async with client_factory(max_concurrency=1) as client:
        response = await client.post("/api/v1/tasks/parent/$execute")
        parent_id = response.json()["job_id"]
        # With one slot, the child runs only once its parent waits without it.
        await asyncio.wait_for(started.wait(), WAIT)
        waiting = (await client.get(f"/api/v1/jobs/{parent_id}")).json()
        (child,) = await children_of(client, parent_id)
        canceled = await client.post(f"/api/v1/jobs/{child['id']}/$cancel")
        job = await finished(client, parent_id)
        value = await result_of(client, job)
    assert waiting["status"] == "waiting"
    assert canceled.status_code == 200, canceled.text
    assert job["status"] == "completed", job
    assert value == "canceled: JobCancelledError"
