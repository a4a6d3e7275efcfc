"""Tasks served by the end-to-end server (`TASKEXEC_TASK_MODULES=tests.e2e.tasks`).

The blocking tasks wait for a release file to appear, so a test decides when they end, and
record how many of them ran at once in this process, so a test can read the peak back from
their results.
"""

import asyncio
import threading
import time
from pathlib import Path

from app.tasks.registry import TaskRegistry
from tests.faulty import FAULTY_TASKS

POLL_SECONDS = 0.01


class Gauge:
    """Counts the runs in progress and remembers the highest count seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def enter(self) -> None:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)

    def leave(self) -> int:
        """Leave and return the peak so far."""
        with self._lock:
            self.current -= 1
            return self.peak


ASYNC_GAUGE = Gauge()
SYNC_GAUGE = Gauge()
RETRY_GAUGE = Gauge()


class NotReleasedError(TimeoutError):
    """The release file did not appear within the task's `max_wait`."""


@TaskRegistry.register("greet", tags=["e2e", "demo", "simple"])
async def greet(name: str = "World") -> dict[str, str]:
    """Return a greeting."""
    return {"message": f"Hello, {name}!"}


@TaskRegistry.register("add", tags=["e2e", "demo", "math"])
def add(a: int, b: int) -> dict[str, int]:
    """Add two integers in a worker thread."""
    return {"sum": a + b}


def _check_message(message: str) -> None:
    raise ValueError(message)


@TaskRegistry.register("explode", tags=["e2e", "errors"])
async def explode(message: str = "boom") -> dict[str, str]:
    """Always fail, two frames deep, so the stored traceback has several file lines."""
    _check_message(message)
    return {"unreachable": message}


@TaskRegistry.register("quick", tags=["e2e", "bench"])
async def quick(n: int) -> dict[str, int]:
    """Return at once."""
    return {"n": n}


async def _wait_async(release: str, max_wait: float) -> None:
    deadline = time.monotonic() + max_wait
    path = Path(release)
    # One stat of a local file per poll: too cheap to be worth a thread hop.
    while not path.exists():  # noqa: ASYNC240
        if time.monotonic() >= deadline:
            raise NotReleasedError(f"not released within {max_wait} s")
        await asyncio.sleep(POLL_SECONDS)


def _wait_sync(release: str, max_wait: float) -> None:
    deadline = time.monotonic() + max_wait
    path = Path(release)
    while not path.exists():
        if time.monotonic() >= deadline:
            raise NotReleasedError(f"not released within {max_wait} s")
        time.sleep(POLL_SECONDS)


@TaskRegistry.register("block_async", tags=["e2e", "blocking"])
async def block_async(release: str, max_wait: float = 30.0) -> dict[str, int]:
    """Wait on the loop until the file `release` exists; return the peak of concurrent runs."""
    ASYNC_GAUGE.enter()
    try:
        await _wait_async(release, max_wait)
    finally:
        peak = ASYNC_GAUGE.leave()
    return {"peak": peak}


@TaskRegistry.register("block_sync", tags=["e2e", "blocking", "sync"])
def block_sync(release: str, max_wait: float = 30.0) -> dict[str, int]:
    """Block a worker thread until the file `release` exists; return the peak of concurrent runs."""
    SYNC_GAUGE.enter()
    try:
        _wait_sync(release, max_wait)
    finally:
        peak = SYNC_GAUGE.leave()
    return {"peak": peak}


@TaskRegistry.register("block_retry", tags=["e2e", "blocking"], retries=1, retry_backoff=0)
async def block_retry(release: str, max_wait: float = 30.0) -> dict[str, int]:
    """`block_async` with one retry, so a run interrupted by a dead worker runs again."""
    RETRY_GAUGE.enter()
    try:
        await _wait_async(release, max_wait)
    finally:
        peak = RETRY_GAUGE.leave()
    return {"peak": peak}


for _name, (_fn, _options) in FAULTY_TASKS.items():
    TaskRegistry.register_function(_name, _fn, tags=["e2e", "faults"], **_options)
