"""Artifact hierarchies: levels, labels, `/artifacts/{id}/tree`, and what deleting a job
takes with it (its own artifacts, never another job's)."""

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
from tests.helpers import assert_problem, run_to_end

HIERARCHY = ArtifactHierarchy("experiments", ["experiment", "run", "metric"])
UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@pytest.fixture
async def client(
    database_url: str, registry: type[TaskRegistry]
) -> AsyncIterator[httpx.AsyncClient]:
    @registry.register("experiment")
    async def experiment(ctx: JobContext) -> dict[str, Any]:
        root = await ctx.add_artifact("experiment", {"lr": 0.1})
        run1 = await ctx.add_artifact("run-1", {}, parent_id=root.id)
        await ctx.add_artifact("run-2", {}, parent_id=root.id)
        loss = await ctx.add_artifact("loss", [0.5, 0.2], parent_id=run1.id)
        try:
            await ctx.add_artifact("too-deep", 1, parent_id=loss.id)
        except ValueError as exc:
            return {"root": root.id, "run1": run1.id, "too_deep": str(exc)}
        return {"root": root.id, "run1": run1.id, "too_deep": None}

    @registry.register("annotate")
    async def annotate(ctx: JobContext, parent_id: str) -> str:
        return (await ctx.add_artifact("note", "see run", kind="text", parent_id=parent_id)).id

    settings = make_settings(database_url)
    app = (
        ServiceBuilder(info=ServiceInfo(display_name="trees"), settings=settings)
        .with_tasks()
        .with_artifacts(hierarchy=HIERARCHY)
        .build()
    )
    async with running_client(app) as client:
        yield client


async def _result(client: httpx.AsyncClient, job: dict[str, Any]) -> Any:
    response = await client.get(f"/api/v1/artifacts/{job['result']}")
    return response.json()["data"]["result"]


async def _tree(client: httpx.AsyncClient, artifact_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/v1/artifacts/{artifact_id}/tree", params=params)
    assert response.status_code == 200, response.text
    tree: dict[str, Any] = response.json()
    return tree


def _shape(node: dict[str, Any]) -> Any:
    return (node["name"], node["level"], node["label"], [_shape(c) for c in node["children"]])


async def test_tree_with_level_labels_and_bounded_depth(client: httpx.AsyncClient) -> None:
    job = await run_to_end(client, "experiment")
    ids = await _result(client, job)

    tree = await _tree(client, ids["root"])
    assert (tree["hierarchy"], tree["level_labels"]) == ("experiments", HIERARCHY.level_labels)
    assert _shape(tree["root"]) == (
        "experiment",
        0,
        "experiment",
        [("run-1", 1, "run", [("loss", 2, "metric", [])]), ("run-2", 1, "run", [])],
    )
    assert (tree["node_count"], tree["truncated"]) == (4, False)
    assert "levels 0 to 2" in ids["too_deep"]

    shallow = await _tree(client, ids["root"], depth=1)
    assert (shallow["node_count"], shallow["truncated"]) == (3, True)
    assert (await _tree(client, ids["run1"]))["root"]["label"] == "run"
    loss = await client.get(f"/api/v1/jobs/{job['id']}/artifacts/loss")
    assert (loss.json()["parent_id"], loss.json()["level"]) == (ids["run1"], 2)


async def test_tree_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/api/v1/artifacts/{UNKNOWN_ID}/tree"), 404, "not_found")
    assert_problem(await client.get(f"/api/v1/artifacts/{UNKNOWN_ID}/tree?depth=99"), 400)


async def test_deleting_a_job_keeps_other_jobs_children(client: httpx.AsyncClient) -> None:
    first = await run_to_end(client, "experiment")
    ids = await _result(client, first)
    second = await run_to_end(client, "annotate", {"parent_id": ids["run1"]})
    note_id = await _result(client, second)

    tree = await _tree(client, ids["root"])
    run1 = tree["root"]["children"][0]
    assert [(c["name"], c["job_id"]) for c in run1["children"]] == [
        ("loss", first["id"]),
        ("note", second["id"]),
    ]

    assert (await client.delete(f"/api/v1/jobs/{first['id']}")).status_code == 204

    for artifact_id in (ids["root"], ids["run1"], first["result"]):
        assert (await client.get(f"/api/v1/artifacts/{artifact_id}")).status_code == 404
    note = await client.get(f"/api/v1/artifacts/{note_id}")
    assert note.status_code == 200
    # The other job's artifact survives as a root; its recorded level is kept.
    assert (note.json()["parent_id"], note.json()["level"], note.json()["job_id"]) == (
        None,
        2,
        second["id"],
    )
    assert (await client.get(f"/api/v1/jobs/{second['id']}/artifacts")).json()["total"] == 2
