"""Run a sync task in a child process, so a timeout or cancellation can really kill it."""

import asyncio
import contextlib
import multiprocessing
import pickle
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from app.core.tracebacks import exception_message, format_exception


class ProcessTaskError(Exception):
    """The task raised in its child process; carries the child's type name and traceback.

    `original` is the exception itself when it could be sent back (so `retry_on` can match
    it), else None.
    """

    def __init__(
        self,
        type_name: str,
        message: str,
        child_traceback: str,
        original: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.child_traceback = child_traceback
        self.original = original


def _child_main(
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    conn: Connection,
    finish: Callable[[Any], Any] | None = None,
) -> None:
    """Run the task and send back ("ok", result) or ("error", type, message, traceback,
    pickled exception or None). Whatever the task raises (`SystemExit` included) is sent."""
    try:
        result = fn(**kwargs)
        if finish is not None:
            result = finish(result)
        message: tuple[Any, ...] = ("ok", result)
    except BaseException as exc:  # the task's sys.exit() must not end the child silently
        message = _error_message(exc)
    try:
        conn.send(message)
    except Exception as exc:
        conn.send(_error_message(exc))
    finally:
        conn.close()


def _error_message(exc: BaseException) -> tuple[Any, ...]:
    try:
        pickled: bytes | None = pickle.dumps(exc)
    except Exception:
        pickled = None
    return ("error", type(exc).__name__, exception_message(exc), format_exception(exc), pickled)


def _unpickle(data: bytes | None) -> BaseException | None:
    """The child's exception, when it can be rebuilt here (some classes cannot)."""
    if data is None:
        return None
    try:
        exc = pickle.loads(data)  # noqa: S301 - our own child process wrote it
    except Exception:
        return None
    return exc if isinstance(exc, BaseException) else None


async def run_in_process(
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    finish: Callable[[Any], Any] | None = None,
) -> Any:
    """Call `fn(**kwargs)` in a fresh spawned process and return its result.

    `finish` (picklable) runs on the result in the child, so a result that cannot be stored
    is refused there and never crosses the pipe.

    Cancelling the awaiting task (timeout or job cancellation) kills the process; it is always
    reaped, even if further cancellations arrive while that happens.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(fn, kwargs, sender, finish), daemon=True)
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()
    started = loop.run_in_executor(None, process.start)
    try:
        await started
        sender.close()
        loop.add_reader(receiver.fileno(), _mark_ready, readable)
        try:
            await readable
        finally:
            loop.remove_reader(receiver.fileno())
        try:
            message = await loop.run_in_executor(None, receiver.recv)
        except EOFError:
            await loop.run_in_executor(None, process.join)
            raise ProcessTaskError(
                "ProcessDied", f"the task's process exited with code {process.exitcode}", ""
            ) from None
        if message[0] == "ok":
            return message[1]
        _, type_name, text, child_traceback, pickled = message
        raise ProcessTaskError(type_name, text, child_traceback, _unpickle(pickled))
    finally:
        await _reap(process, started)
        sender.close()
        receiver.close()


async def _reap(process: Any, started: "asyncio.Future[None]") -> None:
    """Kill (if alive) and join the child, shielded from repeated cancellation."""

    def kill_and_join() -> None:
        if process.pid is None:
            return
        if process.is_alive():
            process.kill()
        process.join()

    async def cleanup() -> None:
        with contextlib.suppress(Exception):
            await started
        await asyncio.get_running_loop().run_in_executor(None, kill_and_join)
        with contextlib.suppress(ValueError):
            process.close()

    task = asyncio.ensure_future(cleanup())
    while not task.done():
        # The caller's cancellation is already on its way out; later ones must not stop this.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)


def _mark_ready(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)
