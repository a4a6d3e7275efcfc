"""Task functions that fail the way careless task code does: `sys.exit()`, `KeyboardInterrupt`,
other `BaseException`s, and exceptions that cannot be printed.

Plain module-level functions, registered by the task modules of the end-to-end and PostgreSQL
tests; a spawned child process (`executor="process"`) imports them from here by name.
"""

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

# How a task stops, and the error type the job must end with.
HOWS = {
    "sys_exit": "SystemExit",
    "system_exit": "SystemExit",
    "keyboard_interrupt": "KeyboardInterrupt",
    "base_exception": "Halt",
    "cancelled": "CancelledError",
}


class Halt(BaseException):
    """A `BaseException` that is neither `SystemExit` nor `KeyboardInterrupt`."""


class Unprintable(ValueError):
    """An exception whose `__str__` and `__repr__` raise."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken")


def stop(how: str) -> None:
    """Stop the way `how` names (a key of `HOWS`)."""
    if how == "sys_exit":
        sys.exit(3)
    if how == "system_exit":
        raise SystemExit("leaving")
    if how == "keyboard_interrupt":
        raise KeyboardInterrupt
    if how == "base_exception":
        raise Halt("halted")
    if how == "cancelled":
        raise asyncio.CancelledError
    raise AssertionError(f"unknown way to stop: {how}")


async def stop_async(how: str) -> None:
    await asyncio.sleep(0)
    stop(how)


def stop_sync(how: str) -> None:
    stop(how)


def stop_in_generator(how: str) -> Iterator[int]:
    yield 1
    stop(how)


async def stop_in_async_generator(how: str) -> AsyncIterator[int]:
    yield 1
    stop(how)


def stop_in_process(how: str) -> None:
    stop(how)


async def unprintable_async() -> None:
    raise Unprintable("hidden")


def unprintable_sync() -> None:
    raise Unprintable("hidden")


def unprintable_in_process() -> None:
    raise Unprintable("hidden")


# Task name -> (function, registration options).
FAULTY_TASKS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "stop_async": (stop_async, {}),
    "stop_sync": (stop_sync, {}),
    "stop_in_generator": (stop_in_generator, {}),
    "stop_in_async_generator": (stop_in_async_generator, {}),
    "stop_in_process": (stop_in_process, {"executor": "process"}),
    "stop_with_retries": (stop_async, {"retries": 2, "retry_backoff": 0}),
    "unprintable_async": (unprintable_async, {}),
    "unprintable_sync": (unprintable_sync, {}),
    "unprintable_in_process": (unprintable_in_process, {"executor": "process"}),
}
STOPPING_TASKS = [name for name in FAULTY_TASKS if name.startswith("stop_")]
UNPRINTABLE_TASKS = [name for name in FAULTY_TASKS if name.startswith("unprintable_")]
