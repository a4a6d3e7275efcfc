"""A flow's artifacts nest the way its jobs do: each job's result under its parent's result,
its named artifacts under its own result, at every depth, on SQLite and PostgreSQL."""

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from app.artifacts.hierarchy import ArtifactHierarchy
from app.jobs.context import JobContext
from app.service.builder import ServiceBuilder
from app.service.schemas import ServiceInfo
from app.tasks.registry import TaskRegistry
from tests.conftest import make_settings, running_client
from tests.helpers import execute, get_json, wait_for_job

HIERARCHY = ArtifactHierarchy("flows", ["flow", "step", "item", "detail"])
Shape = tuple[str, str | None, int, str | None, list[Any]]


class Gates:
    """Lets a test hold a sync child in its thread and know when it is there."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()


@pytest.fixture
def gates() -> Iterator[Gates]:
    held = Gates()
    try:
        yield held
    finally:
        held.release.set()


@pytest.fixture
async def client(
    database_url: str, registry: type[TaskRegistry], gates: Gates
) -> AsyncIterator[httpx.AsyncClient]:
    @registry.register("pipeline")
    async def pipeline(ctx: JobContext, stages: int = 2, leaves: int = 2) -> int:
        await ctx.add_artifact("plan", {"stages": stages})
        items = [{"leaves": leaves, "index": n} for n in range(stages)]
        return sum(await ctx.gather(*ctx.map("stage", items)))

    @registry.register("stage")
    async def stage(ctx: JobContext, leaves: int, index: int) -> int:
        notes = await ctx.add_artifact("notes", f"stage {index}", kind="text")
        await ctx.add_artifact("histogram", [1, 2], parent_id=notes.id)
        return sum(await ctx.gather(*ctx.map("leaf", [{"n": n} for n in range(leaves)])))

    @registry.register("leaf")
    async def leaf(ctx: JobContext, n: int) -> int:
        await ctx.add_artifact("output", {"n": n})
        return n

    register_troubles(registry, gates)
    settings = make_settings(database_url)
    app = (
        ServiceBuilder(info=ServiceInfo(display_name="flow trees"), settings=settings)
        .with_tasks()
        .with_artifacts(hierarchy=HIERARCHY)
        .build()
    )
    async with running_client(app) as client:
        yield client


def register_troubles(registry: type[TaskRegistry], gates: Gates) -> None:
    """Children that retry, fail, hang or outlive their parent, and a cached flow."""

    @registry.register("flaky", retries=1, retry_backoff=0)
    async def flaky(ctx: JobContext) -> int:
        await ctx.add_artifact("attempt", {"attempt": ctx.attempt})
        if ctx.attempt == 1:
            raise RuntimeError("the first attempt fails")
        return ctx.attempt

    @registry.register("retrying_parent")
    async def retrying_parent(ctx: JobContext) -> list[int]:
        return await ctx.gather(ctx.spawn("flaky"), ctx.spawn("flaky", key="again"))

    @registry.register("breaks")
    async def breaks(ctx: JobContext) -> None:
        await ctx.add_artifact("last-words", "bad chunk ahead", kind="text")
        raise ValueError("bad chunk")

    @registry.register("hangs")
    async def hangs() -> None:
        await asyncio.Event().wait()

    @registry.register("failing_parent")
    async def failing_parent(ctx: JobContext) -> None:
        await ctx.gather(*ctx.map("hangs", [{}, {}]), ctx.spawn("breaks"))

    @registry.register("stubborn")
    def stubborn() -> str:
        gates.started.set()
        gates.release.wait(30)
        return "ended after its parent"

    @registry.register("canceled_parent")
    async def canceled_parent(ctx: JobContext) -> None:
        await ctx.add_artifact("started", {})
        await ctx.gather(ctx.spawn("stubborn"))

    @registry.register("cached_flow", cache_ttl=300)
    async def cached_flow(ctx: JobContext, n: int) -> int:
        return sum(await ctx.gather(*ctx.map("leaf", [{"n": i} for i in range(n)])))


async def run(client: httpx.AsyncClient, task: str, params: dict[str, Any]) -> dict[str, Any]:
    return await wait_for_job(client, await execute(client, task, params), within=30)


async def artifact_tree(client: httpx.AsyncClient, artifact_id: str, **params: Any) -> Any:
    return await get_json(client, f"/api/v1/artifacts/{artifact_id}/tree", **params)


async def task_names(client: httpx.AsyncClient, root_id: str) -> dict[str, str]:
    """Job id -> "task[map_index]" for every job of the flow."""
    names: dict[str, str] = {}

    def walk(node: dict[str, Any]) -> None:
        index = "" if node["map_index"] is None else f"[{node['map_index']}]"
        names[node["id"]] = node["task_name"] + index
        for child in node["children"]:
            walk(child)

    walk((await get_json(client, f"/api/v1/jobs/{root_id}/tree"))["root"])
    return names


def shape(node: dict[str, Any], names: dict[str, str]) -> Shape:
    """(artifact name, its job, level, label, children) all the way down."""
    job = names.get(node["job_id"], node["job_id"])
    children = [shape(child, names) for child in node["children"]]
    return (node["name"], job, node["level"], node["label"], children)


def leaf_shape(job: str) -> Shape:
    return ("result", job, 2, "item", [("output", job, 3, "detail", [])])


def stage_shape(job: str, leaves: list[str]) -> Shape:
    notes: Shape = ("notes", job, 2, "item", [("histogram", job, 3, "detail", [])])
    return ("result", job, 1, "step", [notes, *(leaf_shape(leaf) for leaf in leaves)])


async def test_a_flows_artifacts_nest_as_its_jobs_do(client: httpx.AsyncClient) -> None:
    job = await run(client, "pipeline", {"stages": 2, "leaves": 2})
    assert job["status"] == "completed", job
    names = await task_names(client, job["id"])

    tree = await artifact_tree(client, job["result"])

    assert (tree["hierarchy"], tree["level_labels"]) == ("flows", HIERARCHY.level_labels)
    assert shape(tree["root"], names) == (
        "result",
        "pipeline",
        0,
        "flow",
        [
            ("plan", "pipeline", 1, "step", []),
            # A map's items in index order, each job's own artifacts before its children's.
            stage_shape("stage[0]", ["leaf[0]", "leaf[1]"]),
            stage_shape("stage[1]", ["leaf[0]", "leaf[1]"]),
        ],
    )
    assert (tree["node_count"], tree["truncated"]) == (1 + 1 + 2 * (1 + 2 + 2 * 2), False)

    # The labels come with each level, at any depth; a shallower read says it left nodes out.
    leaf_id = tree["root"]["children"][1]["children"][1]["id"]
    leaf = await get_json(client, f"/api/v1/artifacts/{leaf_id}")
    stage_result = tree["root"]["children"][1]["id"]
    assert (leaf["parent_id"], leaf["level"], leaf["name"]) == (stage_result, 2, "result")
    shallow = await artifact_tree(client, job["result"], depth=1)
    assert (shallow["node_count"], shallow["truncated"]) == (4, True)
    assert (await artifact_tree(client, stage_result))["root"]["label"] == "step"


def results_under(node: dict[str, Any]) -> list[str]:
    return [child["id"] for child in node["children"] if child["name"] == "result"]


async def children_of(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    page = await get_json(client, "/api/v1/jobs", parent_id=job_id, limit=100)
    items: list[dict[str, Any]] = page["items"]
    return sorted(items, key=lambda job: job["id"])


async def test_a_retried_child_nests_once_with_its_last_attempts_artifacts(
    client: httpx.AsyncClient,
) -> None:
    job = await run(client, "retrying_parent", {})
    assert job["status"] == "completed", job
    names = await task_names(client, job["id"])

    tree = await artifact_tree(client, job["result"])

    child: Shape = ("result", "flaky", 1, "step", [("attempt", "flaky", 2, "item", [])])
    assert shape(tree["root"], names) == ("result", "retrying_parent", 0, "flow", [child, child])
    for node in tree["root"]["children"]:
        (attempt,) = node["children"]
        stored = await get_json(client, f"/api/v1/artifacts/{attempt['id']}")
        assert stored["data"] == {"attempt": 2}
        assert (await get_json(client, "/api/v1/artifacts", job_id=node["job_id"]))["total"] == 2
    assert {c["attempts"] for c in await children_of(client, job["id"])} == {2}


async def test_failed_and_canceled_children_nest_with_their_tracebacks(
    client: httpx.AsyncClient,
) -> None:
    job = await run(client, "failing_parent", {})
    # The hanging children are canceled when the parent fails, and end after it.
    children = [await wait_for_job(client, c["id"]) for c in await children_of(client, job["id"])]
    names = await task_names(client, job["id"])

    tree = await artifact_tree(client, job["result"])

    assert job["status"] == "failed"
    assert sorted(c["status"] for c in children) == ["canceled", "canceled", "failed"]
    assert shape(tree["root"], names) == (
        "result",
        "failing_parent",
        0,
        "flow",
        [
            ("result", "hangs[0]", 1, "step", []),
            ("result", "hangs[1]", 1, "step", []),
            ("result", "breaks", 1, "step", [("last-words", "breaks", 2, "item", [])]),
        ],
    )
    assert results_under(tree["root"]) == [
        {c["id"]: c for c in children}[node["job_id"]]["result"]
        for node in tree["root"]["children"]
    ]
    errors = [
        (await get_json(client, f"/api/v1/artifacts/{node['id']}"))["data"]["error"]
        for node in tree["root"]["children"]
    ]
    assert [e["type"] for e in errors] == ["JobCancelledError", "JobCancelledError", "ValueError"]
    assert "ValueError: bad chunk" in errors[2]["traceback"]


async def test_a_child_that_ends_after_its_canceled_parent_nests_under_it(
    client: httpx.AsyncClient, gates: Gates
) -> None:
    parent_id = await execute(client, "canceled_parent", {})
    assert await asyncio.to_thread(gates.started.wait, 30)
    (child,) = await children_of(client, parent_id)
    assert (await client.post(f"/api/v1/jobs/{parent_id}/$cancel")).status_code == 200

    parent = await wait_for_job(client, parent_id)
    still = await get_json(client, f"/api/v1/jobs/{child['id']}")
    before = await artifact_tree(client, parent["result"])
    gates.release.set()
    child = await wait_for_job(client, child["id"])
    after = await artifact_tree(client, parent["result"])

    # The parent ended while its child's thread still ran; the child's end found the
    # parent's result and went under it.
    assert (parent["status"], still["status"], still["result"]) == ("canceled", "canceling", None)
    assert [c["name"] for c in before["root"]["children"]] == ["started"]
    assert child["status"] in {"canceled", "completed"}
    assert [(c["name"], c["job_id"], c["level"]) for c in after["root"]["children"]] == [
        ("started", parent_id, 1),
        ("result", child["id"], 1),
    ]
    assert after["root"]["children"][1]["id"] == child["result"]


async def test_a_cache_hit_of_a_flow_is_a_tree_of_its_own(client: httpx.AsyncClient) -> None:
    first = await run(client, "cached_flow", {"n": 2})
    hit = await run(client, "cached_flow", {"n": 2})
    assert (hit["cached_from"], hit["status"]) == (first["id"], "completed")

    # The hit ran no children: its result is a root with nothing below. The source's tree
    # is whole, and stays whole when the hit is deleted.
    assert (await artifact_tree(client, hit["result"]))["node_count"] == 1
    source = await artifact_tree(client, first["result"])
    assert source["node_count"] == 1 + 2 * 2
    assert (await client.delete(f"/api/v1/jobs/{hit['id']}")).status_code == 204
    assert await artifact_tree(client, first["result"]) == source


async def all_artifacts(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    page = await get_json(client, "/api/v1/artifacts", limit=100)
    assert page["total"] == len(page["items"])
    items: list[dict[str, Any]] = page["items"]
    return items


async def assert_no_dangling_parent(client: httpx.AsyncClient) -> None:
    artifacts = await all_artifacts(client)
    ids = {a["id"] for a in artifacts}
    assert {a["parent_id"] for a in artifacts} - {None} <= ids


async def test_deleting_a_child_or_a_parent_takes_its_own_subtree_only(
    client: httpx.AsyncClient,
) -> None:
    job = await run(client, "pipeline", {"stages": 2, "leaves": 2})
    stage0, stage1 = await children_of_in_order(client, job["id"])
    leaf0, leaf1 = await children_of_in_order(client, stage0["id"])
    doomed_leaves = await children_of_in_order(client, stage1["id"])
    total = len(await all_artifacts(client))

    # A child: its own artifacts go, its parent's stay.
    assert (await client.delete(f"/api/v1/jobs/{leaf1['id']}")).status_code == 204
    tree = await artifact_tree(client, job["result"])
    assert results_under(tree["root"]["children"][1]) == [leaf0["result"]]
    assert (await client.get(f"/api/v1/artifacts/{leaf1['result']}")).status_code == 404
    assert (await client.get(f"/api/v1/artifacts/{stage0['result']}")).status_code == 200
    assert len(await all_artifacts(client)) == total - 2
    await assert_no_dangling_parent(client)

    # A parent: deleting its job deletes its children's jobs, and with them their artifacts.
    assert (await client.delete(f"/api/v1/jobs/{stage1['id']}")).status_code == 204
    for gone in [stage1, *doomed_leaves]:
        assert (await client.get(f"/api/v1/jobs/{gone['id']}")).status_code == 404
        assert (await client.get(f"/api/v1/artifacts/{gone['result']}")).status_code == 404
    tree = await artifact_tree(client, job["result"])
    assert results_under(tree["root"]) == [stage0["result"]]
    assert tree["node_count"] == 1 + 1 + (1 + 2 + 2)
    assert len(await all_artifacts(client)) == total - 2 - (3 + 2 * 2)
    await assert_no_dangling_parent(client)

    # The root: the whole flow goes.
    assert (await client.delete(f"/api/v1/jobs/{job['id']}")).status_code == 204
    assert await all_artifacts(client) == []
    assert (await get_json(client, "/api/v1/jobs"))["total"] == 0


async def children_of_in_order(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    """A map's children by index, once each has finished."""
    children = await children_of(client, job_id)
    return [
        await wait_for_job(client, c["id"]) for c in sorted(children, key=lambda c: c["map_index"])
    ]
