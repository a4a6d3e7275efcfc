"""Module-level functions for the process executor tests.

A spawned child process imports this module to find the function it runs, so it stays free of
test fixtures and of anything heavier than the standard library.
"""

import os
import time
from pathlib import Path


class ChildFailure(RuntimeError):
    """Raised in the child process by `fail_in_child`."""


def square(x: int) -> dict[str, int]:
    """Return `x` squared with the pid of the process that computed it."""
    return {"square": x * x, "pid": os.getpid()}


def fail_in_child(message: str) -> None:
    """Raise `ChildFailure` in the child process."""
    _raise_child_failure(message)


def _raise_child_failure(message: str) -> None:
    raise ChildFailure(message)


def exit_abruptly(code: int) -> None:
    """End the child process without sending a result."""
    os._exit(code)


def sleep_with_pid(pid_file: str, seconds: float = 60.0) -> str:
    """Write this process's pid to `pid_file`, then sleep (to be killed before it wakes)."""
    path = Path(pid_file)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(str(os.getpid()))
    scratch.replace(path)  # the pid file appears complete or not at all
    time.sleep(seconds)
    return "woke up"
