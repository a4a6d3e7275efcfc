"""Reading flows over HTTP: children of a job, the nested tree, parent and root in a job."""

from datetime import timedelta
from typing import Any

import httpx

from app.core.clock import new_id, utcnow
from app.db.database import Database
from app.jobs.flow_decisions import child_id
from app.jobs.models import JobStatus
from tests.conftest import ClientFactory
from tests.jobs.helpers import insert_job


async def make_flow(database: Database) -> dict[str, str]:
    """root -> map of 3 "transform" (the middle one has a child), then "load" spawned later."""
    start = utcnow() - timedelta(seconds=60)
    root = new_id()
    await insert_job(
        database,
        id=root,
        task_name="etl",
        status=JobStatus.WAITING,
        created_at=start,
        started_at=start,
        attempts=1,
    )
    ids = {"root": root}
    mapped = start + timedelta(seconds=1)
    # Inserted out of order: the tree orders map items by index.
    for index in (2, 0, 1):
        key = f"#0[{index}]"
        ids[f"t{index}"] = child_id(root, key)
        finished = index != 1
        await insert_job(
            database,
            id=ids[f"t{index}"],
            task_name="transform",
            parent_id=root,
            root_id=root,
            map_index=index,
            child_key=key,
            status=JobStatus.COMPLETED if finished else JobStatus.WAITING,
            created_at=mapped,
            started_at=mapped + timedelta(seconds=1),
            finished_at=mapped + timedelta(seconds=3.5) if finished else None,
            attempts=1,
            result_artifact_id=new_id() if finished else None,
        )
    ids["grandchild"] = child_id(ids["t1"], "deep")
    await insert_job(
        database,
        id=ids["grandchild"],
        task_name="split",
        parent_id=ids["t1"],
        root_id=root,
        child_key="deep",
        status=JobStatus.FAILED,
        error={"type": "ValueError", "message": "bad chunk"},
        created_at=mapped + timedelta(seconds=2),
        attempts=2,
    )
    ids["load"] = child_id(root, "load")
    await insert_job(
        database,
        id=ids["load"],
        task_name="load",
        parent_id=root,
        root_id=root,
        child_key="load",
        created_at=start + timedelta(seconds=30),
    )
    return ids


def shape(node: dict[str, Any]) -> Any:
    return (node["task_name"], node["map_index"], [shape(child) for child in node["children"]])


async def test_children_of_a_job_are_listed_by_parent_id(
    client_factory: ClientFactory, database: Database
) -> None:
    ids = await make_flow(database)
    await insert_job(database, task_name="unrelated")
    async with client_factory(run_worker=False) as client:
        page = (await client.get("/api/v1/jobs", params={"parent_id": ids["root"]})).json()
        lower = await client.get("/api/v1/jobs", params={"parent_id": ids["t1"].lower()})
        both = await client.get(
            "/api/v1/jobs", params={"parent_id": ids["root"], "task": "transform"}
        )
        everything = (await client.get("/api/v1/jobs")).json()
    assert page["total"] == 4
    assert [item["id"] for item in page["items"]] == [ids["t0"], ids["t1"], ids["t2"], ids["load"]]
    assert all(item["parent_id"] == ids["root"] for item in page["items"])
    assert all(item["root_id"] == ids["root"] for item in page["items"])
    assert [item["id"] for item in lower.json()["items"]] == [ids["grandchild"]]
    assert both.json()["total"] == 3
    assert everything["total"] == 7


async def test_a_malformed_parent_id_is_a_bad_request(client_factory: ClientFactory) -> None:
    async with client_factory(run_worker=False) as client:
        response = await client.get("/api/v1/jobs", params={"parent_id": "not-a-ulid"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "parent_id" in response.text


async def test_job_detail_names_its_parent_root_and_map_index(
    client_factory: ClientFactory, database: Database
) -> None:
    ids = await make_flow(database)
    async with client_factory(run_worker=False) as client:
        grandchild = (await client.get(f"/api/v1/jobs/{ids['grandchild']}")).json()
        item = (await client.get(f"/api/v1/jobs/{ids['t2']}")).json()
        root = (await client.get(f"/api/v1/jobs/{ids['root']}")).json()
    assert (grandchild["parent_id"], grandchild["root_id"]) == (ids["t1"], ids["root"])
    assert grandchild["map_index"] is None
    assert (item["parent_id"], item["map_index"]) == (ids["root"], 2)
    assert (root["parent_id"], root["root_id"], root["status"]) == (None, ids["root"], "waiting")


async def test_the_tree_nests_the_whole_flow_in_spawn_and_map_order(
    client_factory: ClientFactory, database: Database
) -> None:
    ids = await make_flow(database)
    async with client_factory(run_worker=False) as client:
        response = await client.get(f"/api/v1/jobs/{ids['root'].lower()}/tree")
    assert response.status_code == 200, response.text
    tree = response.json()
    assert (tree["node_count"], tree["truncated"]) == (6, False)
    root = tree["root"]
    assert shape(root) == (
        "etl",
        None,
        [
            ("transform", 0, []),
            ("transform", 1, [("split", None, [])]),
            ("transform", 2, []),
            ("load", None, []),
        ],
    )
    assert root["status"] == "waiting"
    assert root["child_count"] == 4
    first, middle, _, load = root["children"]
    assert first["id"] == ids["t0"]
    assert first["child_key"] == "#0[0]"
    assert first["duration_seconds"] == 2.5
    assert first["result"] is not None
    assert (first["attempts"], first["status"]) == (1, "completed")
    assert (middle["duration_seconds"], middle["result"], middle["child_count"]) == (None, None, 1)
    split = middle["children"][0]
    assert split["error"] == {"type": "ValueError", "message": "bad chunk"}
    assert (split["attempts"], split["status"]) == (2, "failed")
    assert (load["status"], load["child_key"]) == ("pending", "load")


async def test_the_tree_of_a_child_is_its_subtree(
    client_factory: ClientFactory, database: Database
) -> None:
    ids = await make_flow(database)
    async with client_factory(run_worker=False) as client:
        tree = (await client.get(f"/api/v1/jobs/{ids['t1']}/tree")).json()
        leaf = (await client.get(f"/api/v1/jobs/{ids['load']}/tree")).json()
    assert shape(tree["root"]) == ("transform", 1, [("split", None, [])])
    assert tree["node_count"] == 2
    assert (leaf["node_count"], leaf["root"]["children"], leaf["root"]["child_count"]) == (1, [], 0)


async def test_the_tree_is_bounded_and_says_so(
    client_factory: ClientFactory, database: Database
) -> None:
    ids = await make_flow(database)
    async with client_factory(run_worker=False, tree_max_nodes=3) as client:
        tree = (await client.get(f"/api/v1/jobs/{ids['root']}/tree")).json()
    assert (tree["node_count"], tree["truncated"]) == (3, True)
    root = tree["root"]
    # Taken in creation order: the map's items came first; counts still tell the truth.
    assert [child["map_index"] for child in root["children"]] == [0, 1]
    assert root["child_count"] == 4


async def test_the_tree_of_an_unknown_or_malformed_job(client_factory: ClientFactory) -> None:
    async with client_factory(run_worker=False) as client:
        unknown = await client.get(f"/api/v1/jobs/{new_id()}/tree")
        malformed = await client.get("/api/v1/jobs/nope/tree")
    for response, status in ((unknown, 404), (malformed, 400)):
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"


async def test_the_tree_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/api/v1/jobs/{job_id}/tree" in paths
    parameters = {p["name"] for p in paths["/api/v1/jobs"]["get"]["parameters"]}
    assert "parent_id" in parameters
