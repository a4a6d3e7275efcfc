"""Flows in one process: spawn, map and gather through a real worker, on SQLite and PostgreSQL."""

from collections import Counter
from typing import Any

import pytest

from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry
from tests.conftest import ClientFactory
from tests.jobs.flow_helpers import (
    children_of,
    finished,
    register_double,
    register_fan_out,
    result_of,
    run,
)


async def test_map_and_gather_return_the_results_in_order(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    runs = register_double(registry)
    register_fan_out(registry)
    async with client_factory() as client:
        parent = await run(client, "fan_out", {"count": 5})
        assert parent["status"] == "completed", parent
        assert await result_of(client, parent) == [0, 2, 4, 6, 8]
        children = await children_of(client, parent["id"])
        tree = (await client.get(f"/api/v1/jobs/{parent['id']}/tree")).json()
    assert runs == Counter(range(5))
    assert sorted(child["map_index"] for child in children) == [0, 1, 2, 3, 4]
    assert {child["root_id"] for child in children} == {parent["id"]}
    assert all(child["status"] == "completed" for child in children)
    assert tree["node_count"] == 6
    assert [node["map_index"] for node in tree["root"]["children"]] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("settings", "child_options", "parent_options"),
    [
        pytest.param({"max_concurrency": 1}, {}, {}, id="max_concurrency=1"),
        pytest.param({}, {"max_concurrency": 1}, {"max_concurrency": 1}, id="task-limit=1"),
        pytest.param({"tag_limits": {"etl": 1}}, {"tags": ["etl"]}, {"tags": ["etl"]}, id="tag=1"),
    ],
)
async def test_a_flow_of_twenty_children_completes_under_a_limit_of_one(
    client_factory: ClientFactory,
    registry: type[TaskRegistry],
    settings: dict[str, Any],
    child_options: dict[str, Any],
    parent_options: dict[str, Any],
) -> None:
    runs = register_double(registry, **child_options)
    register_fan_out(registry, **parent_options)
    async with client_factory(**settings) as client:
        first = await client.post("/api/v1/tasks/fan_out/$execute", json={"params": {"count": 20}})
        second = await client.post("/api/v1/tasks/fan_out/$execute", json={"params": {"count": 20}})
        jobs = [await finished(client, r.json()["job_id"]) for r in (first, second)]
        results = [await result_of(client, job) for job in jobs]
    assert [job["status"] for job in jobs] == ["completed", "completed"]
    assert results == [[2 * n for n in range(20)]] * 2
    assert runs == Counter({n: 2 for n in range(20)})


async def test_a_waiting_parent_leaves_its_slot(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    register_double(registry)

    @registry.register("parent")
    async def parent(ctx: JobContext) -> int:
        value: int = await ctx.spawn("double", {"n": 21})
        return value

    async with client_factory(max_concurrency=1) as client:
        # With one slot, the child can only run while its parent waits without it.
        job = await run(client, "parent", {})
        events = (await client.get(f"/api/v1/jobs/{job['id']}/events")).json()["items"]
        (child,) = await children_of(client, job["id"])
    assert job["status"] == "completed", job
    types = [event["type"] for event in events]
    assert types == [
        "created",
        "started",
        "waiting",
        "child_started",
        "child_finished",
        "woken",
        "resumed",
        "completed",
    ]
    waiting, started, finished_, woken = events[2:6]
    assert waiting["data"] == {"children": 1, "fail_fast": True, "parked": False}
    assert started["data"]["job_id"] == finished_["data"]["job_id"] == child["id"]
    assert finished_["data"]["result"] == child["result"]
    assert woken["data"] == {
        "reason": "children_finished",
        "child_id": child["id"],
        "requeued": False,
    }


async def test_a_sync_task_spawns_and_waits_with_a_blocking_call(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    register_double(registry)

    @registry.register("sync_parent")
    def sync_parent(ctx: JobContext) -> int:
        first = ctx.spawn("double", {"n": 20})
        rest = ctx.map("double", [{"n": 1}, {"n": 0}])
        return sum(ctx.wait(first, *rest))

    async with client_factory(max_concurrency=1) as client:
        job = await run(client, "sync_parent", {})
        assert job["status"] == "completed", job
        assert await result_of(client, job) == 42


async def test_a_retried_parent_reattaches_to_the_children_it_made(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    runs = register_double(registry)

    @registry.register("flaky_parent", retries=1, retry_backoff=0)
    async def flaky_parent(ctx: JobContext) -> list[int]:
        values = await ctx.gather(*ctx.map("double", [{"n": n} for n in range(4)]))
        extra: int = await ctx.spawn("double", {"n": 10}, key="extra")
        if ctx.attempt == 1:
            raise RuntimeError("fail after the children finished")
        return [*values, extra]

    async with client_factory() as client:
        job = await run(client, "flaky_parent", {})
        value = await result_of(client, job)
        children = await children_of(client, job["id"])
    assert (job["status"], job["attempts"]) == ("completed", 2)
    assert value == [0, 2, 4, 6, 20]
    assert len(children) == 5
    assert runs == Counter({0: 1, 1: 1, 2: 1, 3: 1, 10: 1})


async def test_a_rerun_that_changes_a_childs_params_is_a_mismatch(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    register_double(registry)

    @registry.register("changing", retries=1, retry_backoff=0)
    async def changing(ctx: JobContext) -> None:
        await ctx.spawn("double", {"n": ctx.attempt})
        raise RuntimeError("retry me")

    async with client_factory() as client:
        job = await run(client, "changing", {})
    assert job["status"] == "failed"
    assert job["error"]["type"] == "FlowMismatchError"
    assert "'#0'" in job["error"]["message"]


async def test_parents_beyond_the_waiting_bound_are_parked_and_requeued(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    runs = register_double(registry)
    register_fan_out(registry)
    async with client_factory(max_waiting_parents=0) as client:
        job = await run(client, "fan_out", {"count": 6})
        events = (await client.get(f"/api/v1/jobs/{job['id']}/events")).json()["items"]
        value = await result_of(client, job)
    assert job["status"] == "completed", job
    assert value == [0, 2, 4, 6, 8, 10]
    assert runs == Counter(range(6))
    waits = [e["data"] for e in events if e["type"] == "waiting"]
    assert waits
    assert all(data["parked"] for data in waits)
    assert any(e["type"] == "woken" and e["data"]["requeued"] for e in events)


async def test_the_roots_stream_follows_the_whole_flow(
    client_factory: ClientFactory, registry: type[TaskRegistry]
) -> None:
    register_double(registry)

    @registry.register("middle")
    async def middle(ctx: JobContext) -> int:
        return sum(await ctx.gather(*ctx.map("double", [{"n": 1}, {"n": 2}])))

    @registry.register("top")
    async def top(ctx: JobContext) -> int:
        value: int = await ctx.spawn("middle")
        return value

    async with client_factory() as client:
        response = await client.post("/api/v1/tasks/top/$execute")
        top_id = response.json()["job_id"]
        async with client.stream("GET", f"/api/v1/jobs/{top_id}/$stream") as stream:
            kinds = [
                line.removeprefix("event: ")
                async for line in stream.aiter_lines()
                if line.startswith("event: ")
            ]
    started = kinds.count("child_started")
    assert started == 3, kinds
    assert kinds.count("child_finished") == 3
    assert kinds[-1] == "completed"
