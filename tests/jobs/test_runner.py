"""run_task and its helpers: one attempt, described as an Outcome; results made storable."""

import asyncio
import contextvars
import math
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.artifacts.manager import ArtifactManager
from app.artifacts.models import Artifact
from app.core.clock import new_id, utcnow
from app.core.errors import ValidationFailedError
from app.db.database import Database
from app.jobs.context import JobCancelledError, JobContext
from app.jobs.injectables import Injectables, SessionFactory
from app.jobs.models import JobStatus
from app.jobs.runner import (
    Outcome,
    ResultNotSerializableError,
    error_record,
    run_task,
    to_json_result,
)
from app.jobs.scheduler import JobScheduler
from app.tasks.registry import TaskDefinition, TaskRegistry

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


class Point(BaseModel):
    x: int
    y: int


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(2, thread_name_prefix="runner-test")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True)


@pytest.fixture
def context() -> JobContext:
    return JobContext(job_id=new_id(), task_name="t", attempt=1, max_attempts=1, params={})


def no_session() -> AsyncSession:
    raise AssertionError("a session was opened for a task that did not ask for one")


async def run(
    definition: TaskDefinition,
    params: dict[str, Any],
    context: JobContext,
    executor: ThreadPoolExecutor,
    *,
    shared: Injectables | None = None,
    session_factory: SessionFactory = no_session,
) -> Outcome:
    return await run_task(
        definition, params, context, shared or _unused(), session_factory, executor
    )


def _unused() -> Injectables:
    """Injectables for tasks that ask for none (its database is never connected to)."""
    database = Database("sqlite+aiosqlite://")
    return Injectables(
        database, ArtifactManager(database), JobScheduler(database, max_concurrency=1)
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({"a": [1, 2.5, "x", True]}, {"a": [1, 2.5, "x", True]}),
        ((1, 2), [1, 2]),
        (Point(x=1, y=2), {"x": 1, "y": 2}),
        (
            datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
            "2026-01-02T03:04:05.000006Z",
        ),
    ],
)
def test_to_json_result_makes_values_json_compatible(value: Any, expected: Any) -> None:
    assert to_json_result(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(object(), id="object"),
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param(-math.inf, id="-inf"),
        pytest.param({"nested": [object()]}, id="nested-object"),
        pytest.param({"nested": {"deep": math.nan}}, id="nested-nan"),
    ],
)
def test_to_json_result_rejects_what_json_cannot_hold(value: Any) -> None:
    with pytest.raises(ResultNotSerializableError, match="cannot be stored as JSON"):
        to_json_result(value)
    assert issubclass(ResultNotSerializableError, TypeError)


def test_error_record_has_type_message_and_traceback() -> None:
    def fail() -> None:
        raise KeyError("missing")

    try:
        fail()
    except KeyError as exc:
        record = error_record(exc)

    assert set(record) == {"type", "message", "traceback"}
    assert record["type"] == "KeyError"
    assert record["message"] == "'missing'"
    assert "in fail" in record["traceback"]
    assert "KeyError: 'missing'" in record["traceback"]


def test_outcome_summary_drops_the_traceback() -> None:
    assert Outcome(JobStatus.COMPLETED, result=1).summary is None
    failed = Outcome(
        JobStatus.FAILED, error={"type": "E", "message": "m", "traceback": "Traceback ..."}
    )
    assert failed.summary == {"type": "E", "message": "m"}


async def test_async_task_completes(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor
) -> None:
    async def add(a: int, b: int = 1) -> dict[str, int]:
        return {"sum": a + b}

    definition = registry.register_function("add", add)

    outcome = await run(definition, {"a": 2}, context, executor)

    assert outcome.status is JobStatus.COMPLETED
    assert outcome.result == {"sum": 3}
    assert (outcome.error, outcome.exception) == (None, None)


async def test_sync_task_runs_in_the_executor_with_the_callers_context(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor
) -> None:
    def where() -> dict[str, str]:
        return {"thread": threading.current_thread().name, "request_id": REQUEST_ID.get()}

    definition = registry.register_function("where", where)
    REQUEST_ID.set("req-42")

    outcome = await run(definition, {}, context, executor)

    assert outcome.status is JobStatus.COMPLETED
    assert outcome.result["thread"].startswith("runner-test")
    assert outcome.result["request_id"] == "req-42"


async def test_params_are_validated_and_converted(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor
) -> None:
    seen: list[datetime] = []

    async def when(at: datetime) -> str:
        seen.append(at)
        return at.isoformat()

    definition = registry.register_function("when", when)

    outcome = await run(definition, {"at": "2026-05-06T07:08:09+00:00"}, context, executor)

    assert outcome.status is JobStatus.COMPLETED
    assert seen == [datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)]


async def test_params_that_no_longer_fit_fail_the_attempt(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor
) -> None:
    calls: list[int] = []

    async def renamed(count: int) -> None:
        calls.append(count)

    definition = registry.register_function("renamed", renamed)

    outcome = await run(definition, {"n": 3}, context, executor)

    assert outcome.status is JobStatus.FAILED
    assert isinstance(outcome.exception, ValidationFailedError)
    assert outcome.error is not None
    assert outcome.error["type"] == "ValidationFailedError"
    assert calls == []


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_raising_task_fails(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor, kind: str
) -> None:
    async def async_boom() -> None:
        raise ZeroDivisionError("async boom")

    def sync_boom() -> None:
        raise ZeroDivisionError("sync boom")

    definition = registry.register_function("boom", async_boom if kind == "async" else sync_boom)

    outcome = await run(definition, {}, context, executor)

    assert outcome.status is JobStatus.FAILED
    assert isinstance(outcome.exception, ZeroDivisionError)
    assert outcome.summary == {"type": "ZeroDivisionError", "message": f"{kind} boom"}
    assert outcome.error is not None
    assert "ZeroDivisionError" in outcome.error["traceback"]


async def test_unserialisable_result_fails_the_attempt(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor
) -> None:
    def odd() -> object:
        return {1, object()}

    definition = registry.register_function("odd", odd)

    outcome = await run(definition, {}, context, executor)

    assert outcome.status is JobStatus.FAILED
    assert isinstance(outcome.exception, ResultNotSerializableError)
    assert outcome.result is None


async def test_raise_if_cancelled_ends_the_attempt_canceled(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor
) -> None:
    def check(ctx: JobContext) -> str:
        ctx.raise_if_cancelled()
        return "went on"

    definition = registry.register_function("check", check)
    context.request_cancel()

    outcome = await run(definition, {}, context, executor)

    assert outcome.status is JobStatus.CANCELED
    assert isinstance(outcome.exception, JobCancelledError)
    assert outcome.summary is not None
    assert outcome.summary["type"] == "JobCancelledError"


async def test_requested_cancellation_of_an_async_task_is_an_outcome(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor
) -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.wait_for(asyncio.Event().wait(), 10)

    definition = registry.register_function("forever", forever)
    attempt = asyncio.create_task(run(definition, {}, context, executor))
    await asyncio.wait_for(started.wait(), 10)

    context.request_cancel()
    attempt.cancel()
    outcome = await asyncio.wait_for(attempt, 10)

    assert outcome.status is JobStatus.CANCELED
    assert outcome.summary is not None
    assert outcome.summary["type"] == "JobCancelledError"
    assert context.job_id in outcome.summary["message"]


async def test_cancellation_not_asked_for_propagates(
    registry: type[TaskRegistry], context: JobContext, executor: ThreadPoolExecutor
) -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.wait_for(asyncio.Event().wait(), 10)

    definition = registry.register_function("forever", forever)
    attempt = asyncio.create_task(run(definition, {}, context, executor))
    await asyncio.wait_for(started.wait(), 10)

    attempt.cancel()

    with pytest.raises(asyncio.CancelledError):
        await attempt


async def count_artifacts(database: Database, artifact_id: str) -> int:
    async with database.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Artifact).where(Artifact.id == artifact_id)
        )
    return int(count or 0)


@pytest.mark.parametrize("fail", [False, True])
async def test_injected_session_is_committed_or_rolled_back_and_closed(
    registry: type[TaskRegistry],
    context: JobContext,
    executor: ThreadPoolExecutor,
    database: Database,
    fail: bool,
) -> None:
    row_id = new_id()
    sessions: list[AsyncSession] = []

    async def write(fail: bool, session: AsyncSession) -> None:
        sessions.append(session)
        session.add(Artifact(id=row_id, job_id=None, data={}, created_at=utcnow()))
        await session.flush()
        if fail:
            raise RuntimeError("no")

    definition = registry.register_function("write", write)

    outcome = await run(
        definition, {"fail": fail}, context, executor, session_factory=database.session
    )

    assert outcome.status is (JobStatus.FAILED if fail else JobStatus.COMPLETED)
    assert await count_artifacts(database, row_id) == (0 if fail else 1)
    [session] = sessions
    assert not session.in_transaction()


async def test_shared_objects_and_context_are_injected_by_annotation(
    registry: type[TaskRegistry],
    context: JobContext,
    executor: ThreadPoolExecutor,
    database: Database,
) -> None:
    def inspect_injection(value: int, db: Database, job: JobContext | None = None) -> bool:
        return db is database and job is context and value == 1

    definition = registry.register_function("inspect_injection", inspect_injection)

    outcome = await run(definition, {"value": 1}, context, executor, shared=_injectables(database))

    assert outcome.status is JobStatus.COMPLETED
    assert outcome.result is True


def _injectables(database: Database) -> Injectables:
    return Injectables(
        database, ArtifactManager(database), JobScheduler(database, max_concurrency=1)
    )
