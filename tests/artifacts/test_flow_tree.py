"""A flow's artifacts nest the way its jobs do: each job's result under its parent's result,
its named artifacts under its own result, at every depth, on SQLite and PostgreSQL."""

import asyncio
import threading
from collections.abc import AsyncIterator
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


@pytest.fixture
async def client(
    database_url: str, registry: type[TaskRegistry]
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

    settings = make_settings(database_url)
    app = (
        ServiceBuilder(info=ServiceInfo(display_name="flow trees"), settings=settings)
        .with_tasks()
        .with_artifacts(hierarchy=HIERARCHY)
        .build()
    )
    async with running_client(app) as client:
        yield client


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
    notes = ("notes", job, 2, "item", [("histogram", job, 3, "detail", [])])
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
