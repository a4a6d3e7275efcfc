"""Run one claimed job: inject dependencies, call the function, make its result storable."""

import asyncio
import contextvars
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.tracebacks import format_exception
from app.db.database import ambient_session
from app.jobs.context import JobCancelledError, JobContext
from app.jobs.injectables import Injectables, SessionFactory
from app.jobs.models import JobStatus
from app.jobs.process import ProcessTaskError, run_in_process
from app.tasks.registry import TaskDefinition


class ResultNotSerializableError(TypeError):
    """The task returned a value that cannot be stored as JSON."""


@dataclass
class Outcome:
    """How one attempt ended."""

    status: JobStatus
    result: Any = None
    error: dict[str, Any] | None = None
    exception: BaseException | None = None
    # A timed-out thread still running: its slot is held until it ends.
    lingering: "asyncio.Future[Any] | None" = None

    @property
    def summary(self) -> dict[str, str] | None:
        if self.error is None:
            return None
        return {"type": self.error["type"], "message": self.error["message"]}


def error_record(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": format_exception(exc),
    }


def to_json_result(value: Any) -> Any:
    """A JSON-compatible copy of `value`, or `ResultNotSerializableError`."""
    try:
        plain = to_jsonable_python(value)
        json.dumps(plain, allow_nan=False)
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise ResultNotSerializableError(
            f"the task returned a {type(value).__name__} that cannot be stored as JSON: {exc}"
        ) from exc
    return plain


class _Injected:
    """Per-run instances of the injectable types; the session is opened only if asked for."""

    def __init__(self, shared: Injectables, context: JobContext, session: SessionFactory) -> None:
        self.values = shared.by_type(context)
        self.session_factory = session
        self.session: AsyncSession | None = None

    def resolve(self, wanted: type[Any]) -> Any:
        if wanted is AsyncSession:
            if self.session is None:
                self.session = self.session_factory()
                # Service writes made on the task's behalf join this session.
                ambient_session.set(self.session)
            return self.session
        return self.values[wanted]


class JobTimeoutError(TimeoutError):
    """An attempt ran longer than its timeout."""


async def run_task(
    definition: TaskDefinition,
    params: dict[str, Any],
    context: JobContext,
    shared: Injectables,
    session_factory: SessionFactory,
    executor: Executor,
    timeout: float | None = None,  # noqa: ASYNC109 - the attempt's limit, enforced per executor
) -> Outcome:
    """Run one attempt and describe how it ended.

    Never raises, except a cancellation of the calling task that was not a job cancellation.
    A sync task in a thread that times out cannot be stopped: the outcome is a timeout failure
    and `Outcome.lingering` is the thread, which keeps its concurrency slot until it returns.
    """
    injected = _Injected(shared, context, session_factory)
    try:
        kwargs = definition.validate_params(params)
        for name, wanted in definition.injected.items():
            kwargs[name] = injected.resolve(wanted)
        if definition.is_async:
            work = (
                _collect_async(definition.fn(**kwargs), context)
                if definition.is_generator
                else definition.fn(**kwargs)
            )
            value = await _with_timeout(work, timeout, "the coroutine was cancelled")
        elif definition.options.executor == "process":
            value = await _with_timeout(
                run_in_process(definition.fn, kwargs), timeout, "its process was killed"
            )
        else:
            call = functools.partial(definition.fn, **kwargs)
            if definition.is_generator:
                call = functools.partial(_collect_sync, call, context)
            ctx = contextvars.copy_context()
            thread = asyncio.get_running_loop().run_in_executor(executor, ctx.run, call)
            try:
                value = await asyncio.wait_for(asyncio.shield(thread), timeout)
            except TimeoutError:
                exc = JobTimeoutError(
                    f"timed out after {timeout:g} s; its thread cannot be stopped and keeps its "
                    "concurrency slot until it returns"
                )
                return Outcome(
                    JobStatus.FAILED, error=error_record(exc), exception=exc, lingering=thread
                )
        result = to_json_result(value)
        if injected.session is not None:
            await injected.session.commit()
        return Outcome(JobStatus.COMPLETED, result=result)
    except asyncio.CancelledError as exc:
        if not context.cancel_requested:
            raise
        return Outcome(JobStatus.CANCELED, error=_cancel_record(exc, context))
    except JobCancelledError as exc:
        return Outcome(JobStatus.CANCELED, error=error_record(exc), exception=exc)
    except ProcessTaskError as exc:
        error = {"type": exc.type_name, "message": str(exc), "traceback": exc.child_traceback}
        return Outcome(JobStatus.FAILED, error=error, exception=exc.original or exc)
    except Exception as exc:
        return Outcome(JobStatus.FAILED, error=error_record(exc), exception=exc)
    finally:
        if injected.session is not None:
            await asyncio.shield(injected.session.close())


async def _collect_async(items: AsyncIterator[Any], context: JobContext) -> list[Any]:
    collected: list[Any] = []
    async for item in items:
        collected.append(item)
        context.report_item(len(collected), _item_for_event(item))
    return collected


def _collect_sync(make: Callable[[], Iterator[Any]], context: JobContext) -> list[Any]:
    collected: list[Any] = []
    for item in make():
        collected.append(item)
        context.report_item(len(collected), _item_for_event(item))
    return collected


def _item_for_event(item: Any) -> Any:
    try:
        return to_json_result(item)
    except ResultNotSerializableError:
        return repr(item)


async def _with_timeout(awaitable: Awaitable[Any], seconds: float | None, how: str) -> Any:
    if seconds is None:
        return await awaitable
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError as exc:
        raise JobTimeoutError(f"timed out after {seconds:g} s; {how}") from exc


def _cancel_record(exc: BaseException, context: JobContext) -> dict[str, Any]:
    return {
        "type": "JobCancelledError",
        "message": f"job {context.job_id} was canceled while running",
        "traceback": format_exception(exc),
    }
