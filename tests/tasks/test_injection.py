"""Injected parameters: chosen by annotation, supplied by the worker, never by the caller."""

import inspect
import threading
import typing
from typing import Annotated, Any, Optional

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.manager import ArtifactManager
from app.db.database import Database
from app.jobs.context import JobContext
from app.jobs.scheduler import JobScheduler
from app.tasks.injection import injectable_types, injected_parameters
from app.tasks.registry import TaskRegistry
from tests.helpers import execute, run_to_end, wait_for_job


def _injected(fn: Any) -> dict[str, type[Any]]:
    return injected_parameters(
        inspect.signature(fn), typing.get_type_hints(fn, include_extras=True)
    )


def test_injectable_types_are_the_documented_five() -> None:
    assert set(injectable_types()) == {
        AsyncSession,
        Database,
        ArtifactManager,
        JobScheduler,
        JobContext,
    }


def test_plain_annotations_are_detected() -> None:
    def task(
        a: int,
        session: AsyncSession,
        db: Database,
        artifacts: ArtifactManager,
        scheduler: JobScheduler,
        ctx: JobContext,
    ) -> None:
        pass

    assert _injected(task) == {
        "session": AsyncSession,
        "db": Database,
        "artifacts": ArtifactManager,
        "scheduler": JobScheduler,
        "ctx": JobContext,
    }


def test_optional_and_annotated_forms_are_detected() -> None:
    def task(
        a: JobContext | None,
        b: Optional[Database],  # noqa: UP045 - the Optional form is what is tested
        c: None | ArtifactManager,  # noqa: RUF036 - None first is a form users write
        d: Annotated[JobScheduler, "doc"],
        e: Annotated[AsyncSession | None, "doc"],
    ) -> None:
        pass

    assert _injected(task) == {
        "a": JobContext,
        "b": Database,
        "c": ArtifactManager,
        "d": JobScheduler,
        "e": AsyncSession,
    }


def test_names_and_other_types_are_not_injected() -> None:
    def task(
        session: str,
        ctx: int,
        database: Any,
        either: JobContext | Database,
        many: list[JobContext],
        unannotated: Any = None,
    ) -> None:
        pass

    assert _injected(task) == {}


# Through the service ------------------------------------------------------------------------


async def test_worker_injects_every_type_into_an_async_task(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    seen: dict[str, Any] = {}

    @registry.register("inspect-injected")
    async def inspect_injected(
        value: int,
        session: AsyncSession,
        database: Database,
        artifacts: ArtifactManager,
        scheduler: JobScheduler,
        ctx: JobContext,
    ) -> dict[str, Any]:
        seen.update(database=database, artifacts=artifacts, scheduler=scheduler, ctx=ctx)
        one = (await session.execute(text("SELECT 1"))).scalar_one()
        saved = await artifacts.save({"note": "from task"}, job_id=ctx.job_id)
        return {
            "value": value,
            "one": one,
            "job_id": ctx.job_id,
            "attempt": ctx.attempt,
            "task_name": ctx.task_name,
            "saved": saved.id,
        }

    job_id = await execute(client, "inspect-injected", {"value": 5})
    job = await wait_for_job(client, job_id)

    assert job["status"] == "completed", job
    artifact = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()
    result = artifact["data"]["result"]
    assert result["value"] == 5
    assert result["one"] == 1
    assert result["job_id"] == job_id
    assert result["attempt"] == 1
    assert result["task_name"] == "inspect-injected"
    assert isinstance(seen["database"], Database)
    assert isinstance(seen["artifacts"], ArtifactManager)
    assert isinstance(seen["scheduler"], JobScheduler)
    assert isinstance(seen["ctx"], JobContext)
    # The artifact the task saved through its injected manager is readable over the API.
    saved = (await client.get(f"/api/v1/artifacts/{result['saved']}")).json()
    assert saved["data"] == {"note": "from task"}
    assert saved["job_id"] == job_id
    # Injected values are not stored as request params.
    assert job["params"] == {"value": 5}


async def test_worker_injects_context_into_a_sync_task_in_a_thread(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("sync-ctx")
    def sync_ctx(ctx: JobContext, word: str) -> dict[str, Any]:
        return {
            "job_id": ctx.job_id,
            "word": word,
            "main_thread": threading.current_thread() is threading.main_thread(),
        }

    job_id = await execute(client, "sync-ctx", {"word": "hi"})
    job = await wait_for_job(client, job_id)

    assert job["status"] == "completed", job
    data = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()["data"]
    assert data["result"] == {"job_id": job_id, "word": "hi", "main_thread": False}


async def test_injected_scheduler_can_queue_a_follow_up_job(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("child")
    def child(n: int) -> int:
        return n * 2

    @registry.register("parent")
    async def parent(scheduler: JobScheduler, n: int) -> str:
        follow_up = await scheduler.submit("child", {"n": n})
        return follow_up.id

    parent_job = await run_to_end(client, "parent", {"n": 21})
    assert parent_job["status"] == "completed", parent_job
    child_id = (await client.get(f"/api/v1/artifacts/{parent_job['result']}")).json()["data"][
        "result"
    ]

    child_job = await wait_for_job(client, child_id)

    assert child_job["task_name"] == "child"
    assert child_job["status"] == "completed"
    child_data = (await client.get(f"/api/v1/artifacts/{child_job['result']}")).json()["data"]
    assert child_data["result"] == 42


async def test_request_cannot_supply_an_injected_param(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("guarded")
    async def guarded(ctx: JobContext, db: Database) -> str:
        return ctx.job_id

    response = await client.post(
        "/api/v1/tasks/guarded/$execute", json={"params": {"ctx": "forged", "db": "x"}}
    )

    assert response.status_code == 400
    body = response.json()
    assert sorted(tuple(e["loc"]) for e in body["errors"]) == [
        ("params", "ctx"),
        ("params", "db"),
    ]
    assert {e["type"] for e in body["errors"]} == {"extra_forbidden"}
    assert (await client.get("/api/v1/jobs")).json()["total"] == 0


async def test_var_keyword_task_still_gets_the_real_injected_value(
    registry: type[TaskRegistry], client: httpx.AsyncClient
) -> None:
    @registry.register("kw-ctx")
    async def kw_ctx(ctx: JobContext, **kwargs: Any) -> dict[str, Any]:
        return {"ctx_type": type(ctx).__name__, "job_id": ctx.job_id, "kwargs": kwargs}

    response = await client.post(
        "/api/v1/tasks/kw-ctx/$execute", json={"params": {"ctx": "forged", "other": 1}}
    )
    if response.status_code == 400:
        # Rejecting the forged name outright is the stricter, preferred behaviour.
        assert (await client.get("/api/v1/jobs")).json()["total"] == 0
        return
    assert response.status_code == 202
    job = await wait_for_job(client, response.json()["job_id"])
    result = (await client.get(f"/api/v1/artifacts/{job['result']}")).json()["data"]["result"]

    assert result["ctx_type"] == "JobContext"
    assert result["job_id"] == job["id"]
    assert "ctx" not in result["kwargs"]
