"""A flow survives kill -9: the parent re-runs, re-attaches to its children, creates none twice,
and every child's side effect is applied exactly once."""

import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServerFactory, execute, get_artifact, list_all, wait_job
from tests.helpers import poll_until

pytestmark = pytest.mark.e2e

CHILDREN = 20
HALF = 10
# Far longer than the test: the killed server's jobs are recovered because its process is
# gone, not because a lease ran out.
LONG_LEASE = 600.0


def children(client: httpx.Client, parent: str, status: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, str | int] = {"parent_id": parent, "limit": 500}
    if status is not None:
        params["status"] = status
    page = client.get("/api/v1/jobs", params=params).json()
    items: list[dict[str, Any]] = page["items"]
    assert page["total"] == len(items)
    return items


def test_kill9_during_a_map_then_restart_completes_the_flow_exactly_once(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(
        max_concurrency=2,
        lease_seconds=LONG_LEASE,
        env={"TASKEXEC_TASK_MODULES": "tests.e2e.tasks,tests.e2e.flow_tasks"},
    )
    log, gate = tmp_path / "marks.log", tmp_path / "gate"
    params = {"count": CHILDREN, "log": str(log), "gate": str(gate), "hold_from": HALF}
    with server.client() as client:
        parent = execute(client, "mark_all", params)

        poll_until(
            lambda: len(children(client, parent, "completed")) == HALF,
            within=30,
            what=f"{HALF} children completed",
        )
        poll_until(
            lambda: len(children(client, parent, "running")) == 2,
            within=30,
            what="two held children running",
        )
        before = {job["id"]: job for job in children(client, parent)}
        assert client.get(f"/api/v1/jobs/{parent}").json()["status"] == "waiting"
    assert len(before) == CHILDREN

    assert server.kill9() == -signal.SIGKILL
    server.restart()
    gate.touch()

    with server.client() as client:
        done = wait_job(client, parent, timeout=60)
        assert done["status"] == "completed", done
        assert get_artifact(client, done["result"])["data"]["result"] == sum(range(CHILDREN))
        after = {job["id"]: job for job in children(client, parent)}
        events = list_all(client, f"/api/v1/jobs/{parent}/events")
        tree = client.get(f"/api/v1/jobs/{parent}/tree").json()
        artifacts = client.get(f"/api/v1/artifacts/{done['result']}/tree").json()
    # The same 20 children, none created twice; those done before the kill did not run again.
    assert after.keys() == before.keys()
    assert {job["status"] for job in after.values()} == {"completed"}
    assert sorted(job["map_index"] for job in after.values()) == list(range(CHILDREN))
    for job_id, job in before.items():
        if job["status"] == "completed":
            assert after[job_id]["finished_at"] == job["finished_at"]
    marks = Counter(int(line) for line in log.read_text().split())
    assert marks == Counter(range(CHILDREN))
    types = [event["type"] for event in events]
    assert "requeued" in types
    assert types.count("started") == 2
    assert tree["node_count"] == CHILDREN + 1
    # The flow's artifacts nest as its jobs do: each child's one result under the parent's,
    # whether it ended before the kill or after, in the order of the map.
    by_index = sorted(after.values(), key=lambda job: job["map_index"])
    nested = [(node["id"], node["job_id"], node["level"]) for node in artifacts["root"]["children"]]
    assert nested == [(job["result"], job["id"], 1) for job in by_index]
    assert (artifacts["node_count"], artifacts["truncated"]) == (CHILDREN + 1, False)
