"""Run one claimed job: inject dependencies, call the function, make its result storable."""

import asyncio
import contextvars
import functools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Literal

from pydantic_core import PydanticSerializationError, to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.tracebacks import exception_message, format_exception
from app.db.database import ambient_session
from app.jobs.bounds import Bounds, json_size, truncate_head, truncate_middle
from app.jobs.context import JobCancelledError, JobContext
from app.jobs.injectables import Injectables, SessionFactory
from app.jobs.models import JobStatus
from app.jobs.process import ProcessTaskError, run_in_process
from app.tasks.registry import TaskDefinition

DEFAULT_BOUNDS = Bounds()
ExecutorName = Literal["thread", "process"]


class ResultNotSerializableError(TypeError):
    """The task returned a value that cannot be stored as JSON."""


class ResultTooLargeError(ValueError):
    """The task returned a value larger, as JSON, than `TASKEXEC_MAX_RESULT_BYTES`."""


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


def error_record(exc: BaseException, bounds: Bounds = DEFAULT_BOUNDS) -> dict[str, Any]:
    """The stored error of `exc`, bounded; never raises, whatever `exc` does when printed."""
    return bounded_error(type(exc).__name__, exception_message(exc), format_exception(exc), bounds)


def bounded_error(
    type_name: str, message: str, traceback: str | None, bounds: Bounds
) -> dict[str, Any]:
    """An error record with its message and traceback cut to their bounds, marked."""
    return {
        "type": truncate_head(type_name, 200),
        "message": truncate_head(message, bounds.max_error_message_bytes),
        "traceback": None
        if traceback is None
        else truncate_middle(traceback, bounds.max_traceback_bytes),
    }


def to_json_result(value: Any, max_bytes: int | None = None) -> Any:
    """A JSON-compatible copy of `value`; `ResultNotSerializableError` if there is none, and
    `ResultTooLargeError` if it is over `max_bytes` of JSON."""
    try:
        plain = to_jsonable_python(value)
        size = json_size(plain)
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise ResultNotSerializableError(
            f"the task returned a {type(value).__name__} that cannot be stored as JSON: "
            f"{exception_message(exc)}"
        ) from exc
    if max_bytes is not None and size > max_bytes:
        raise ResultTooLargeError(
            f"the task's result is {size} bytes of JSON, over the limit of {max_bytes} bytes "
            "(TASKEXEC_MAX_RESULT_BYTES)"
        )
    return plain


def runs_in_process(definition: TaskDefinition, default: ExecutorName = "thread") -> bool:
    """Whether a task runs in a child process: its own `executor=` option wins; otherwise
    `default` (`TASKEXEC_SYNC_EXECUTOR`) applies to the sync tasks a process can run: not
    generators, no injected parameters, and a function a child can import by name."""
    chosen = definition.options.executor
    if chosen is not None:
        return chosen == "process"
    return (
        default == "process"
        and not definition.is_async
        and not definition.is_generator
        and not definition.injected
        and _importable(definition.fn)
    )


def _importable(fn: Callable[..., Any]) -> bool:
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    target: Any = module
    for part in getattr(fn, "__qualname__", "<lambda>").split("."):
        target = getattr(target, part, None)
    return module is not None and module.__name__ != "__main__" and target is fn


class _Injected:
    """Per-run instances of the injectable types; the session is opened only if asked for."""

    def __init__(self, shared: Injectables, context: JobContext, session: SessionFactory) -> None:
        self.shared = shared
        self.context = context
        self.session_factory = session
        self.session: AsyncSession | None = None
        self._ambient: contextvars.Token[AsyncSession | None] | None = None

    def resolve(self, wanted: type[Any]) -> Any:
        if wanted is AsyncSession:
            if self.session is None:
                self.session = self.session_factory()
                # Service writes made on the task's behalf join this session.
                self._ambient = ambient_session.set(self.session)
            return self.session
        return self.shared.by_type(self.context)[wanted]

    async def close(self) -> None:
        """Close the task's session; later writes in this context no longer join it."""
        if self._ambient is not None:
            ambient_session.reset(self._ambient)
        if self.session is not None:
            await asyncio.shield(self.session.close())


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
    *,
    bounds: Bounds = DEFAULT_BOUNDS,
    default_executor: ExecutorName = "thread",
) -> Outcome:
    """Run one attempt and describe how it ended.

    Never raises, except a cancellation of the calling task that was not a job cancellation:
    whatever the task raises (`SystemExit`, `KeyboardInterrupt`, any `BaseException`, even a
    `CancelledError` of its own) fails the job. A sync task in a thread that times out cannot
    be stopped: the outcome is a timeout failure and `Outcome.lingering` is the thread, which
    keeps its concurrency slot until it returns. Results, messages and tracebacks are bounded
    by `bounds`.
    """
    injected = _Injected(shared, context, session_factory)
    convert = functools.partial(to_json_result, max_bytes=bounds.max_result_bytes)
    context.artifacts = shared.artifacts  # ctx.add_artifact stores through it
    try:
        # Nothing to validate for a call without parameters (the common no-argument task).
        if params or definition.params_model.model_fields:
            kwargs = definition.validate_params(params)
        else:
            kwargs = {}
        for name, wanted in definition.injected.items():
            kwargs[name] = injected.resolve(wanted)
        if definition.is_async:
            work = (
                _collect_async(definition.fn(**kwargs), context)
                if definition.is_generator
                else definition.fn(**kwargs)
            )
            result = convert(await _with_timeout(work, timeout, "the coroutine was cancelled"))
        elif runs_in_process(definition, default_executor):
            result = await _with_timeout(
                run_in_process(definition.fn, kwargs, convert), timeout, "its process was killed"
            )
        else:
            call = functools.partial(definition.fn, **kwargs)
            if definition.is_generator:
                call = functools.partial(_collect_sync, call, context)
            # The result is made storable (and measured) in the task's thread, off the loop.
            call = functools.partial(_call_and_convert, call, convert)
            ctx = contextvars.copy_context()
            thread = asyncio.get_running_loop().run_in_executor(executor, ctx.run, call)
            try:
                result = await asyncio.wait_for(asyncio.shield(thread), timeout)
            except TimeoutError:
                exc = JobTimeoutError(
                    f"timed out after {timeout:g} s; its thread cannot be stopped and keeps its "
                    "concurrency slot until it returns"
                )
                return Outcome(
                    JobStatus.FAILED,
                    error=error_record(exc, bounds),
                    exception=exc,
                    lingering=thread,
                )
        if injected.session is not None:
            await injected.session.commit()
        return Outcome(JobStatus.COMPLETED, result=result)
    except asyncio.CancelledError as exc:
        if context.cancel_requested:
            return Outcome(JobStatus.CANCELED, error=_cancel_record(exc, context, bounds))
        if _cancelled_by_the_service():
            raise
        # The task raised CancelledError itself: a failure like any other.
        return Outcome(JobStatus.FAILED, error=error_record(exc, bounds), exception=exc)
    except JobCancelledError as exc:
        return Outcome(JobStatus.CANCELED, error=error_record(exc, bounds), exception=exc)
    except ProcessTaskError as exc:
        error = bounded_error(exc.type_name, str(exc), exc.child_traceback, bounds)
        return Outcome(JobStatus.FAILED, error=error, exception=exc.original or exc)
    except BaseException as exc:  # sys.exit() in a task must not stop the service
        return Outcome(JobStatus.FAILED, error=error_record(exc, bounds), exception=exc)
    finally:
        await injected.close()


def _cancelled_by_the_service() -> bool:
    """Whether the running asyncio task was cancelled from outside (shutdown, hand-back)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _call_and_convert(call: Callable[[], Any], convert: Callable[[Any], Any]) -> Any:
    return convert(call())


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


# A generator's latest item is shown in its progress event up to this many bytes of JSON.
ITEM_EVENT_BYTES = 4096


def _item_for_event(item: Any) -> Any:
    try:
        return to_json_result(item, max_bytes=ITEM_EVENT_BYTES)
    except ResultNotSerializableError:
        return truncate_head(_safe_repr(item), ITEM_EVENT_BYTES)
    except ResultTooLargeError:
        return f"<{type(item).__name__} over {ITEM_EVENT_BYTES} bytes of JSON, not shown>"


def _safe_repr(item: Any) -> str:
    try:
        return repr(item)
    except Exception as exc:
        return f"<unprintable {type(item).__name__}: __repr__ raised {type(exc).__name__}>"


async def _with_timeout(awaitable: Awaitable[Any], seconds: float | None, how: str) -> Any:
    if seconds is None:
        return await awaitable
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError as exc:
        raise JobTimeoutError(f"timed out after {seconds:g} s; {how}") from exc


def _cancel_record(exc: BaseException, context: JobContext, bounds: Bounds) -> dict[str, Any]:
    message = f"job {context.job_id} was canceled while running"
    return bounded_error("JobCancelledError", message, format_exception(exc), bounds)
