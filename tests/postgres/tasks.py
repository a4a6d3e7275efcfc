"""Tasks the PostgreSQL tests run in real worker processes (`tests.postgres.tasks`).

Each task leaves evidence outside the database, in a file named by a param: which job ran, in
which process and when. Lines are appended with one small `write` to a file opened in append
mode (O_APPEND), so lines from many threads and processes never interleave.
"""

import asyncio
import os
import time
from pathlib import Path

from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry
from tests.faulty import FAULTY_TASKS

POLL_SECONDS = 0.02


class NotReleasedError(TimeoutError):
    """The release file did not appear within the task's `max_wait`."""


def append_line(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")


def record_run(log: str, ctx: JobContext) -> dict[str, int]:
    """Append "<job_id> <pid>" to `log`."""
    append_line(log, f"{ctx.job_id} {os.getpid()}")
    return {"pid": os.getpid()}


async def block(release: str, log: str, ctx: JobContext, max_wait: float = 60.0) -> dict[str, int]:
    """Append "<job_id> <pid> <attempt>" to `log`, then wait until the file `release` exists."""
    await asyncio.to_thread(append_line, log, f"{ctx.job_id} {os.getpid()} {ctx.attempt}")
    deadline = time.monotonic() + max_wait
    path = Path(release)
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() >= deadline:
            raise NotReleasedError(f"not released within {max_wait} s")
        await asyncio.sleep(POLL_SECONDS)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


async def nap(seconds: float, step: float = 0.05) -> dict[str, float]:
    """Sleep on the loop in small steps (a cancellation lands at the next step)."""
    for _ in range(max(1, round(seconds / step))):
        await asyncio.sleep(step)
    return {"slept": seconds}


async def quick(n: int, pause: float = 0.0) -> dict[str, int]:
    """Return `n`, after an optional short pause."""
    if pause:
        await asyncio.sleep(pause)
    return {"n": n}


def limited(log: str, hold: float, ctx: JobContext) -> dict[str, int]:
    """Append "start"/"end" lines with monotonic nanoseconds around a blocking `hold`."""
    append_line(log, f"start {ctx.job_id} {os.getpid()} {time.monotonic_ns()}")
    time.sleep(hold)
    append_line(log, f"end {ctx.job_id} {os.getpid()} {time.monotonic_ns()}")
    return {"pid": os.getpid()}


# At most this many `pg_limited` jobs run at once, over every worker process.
LIMIT = 2


def register_tasks(registry: type[TaskRegistry]) -> None:
    """Register the tasks of this module (worker processes do it on import)."""
    registry.register_function("pg_record_run", record_run, tags=["postgres"])
    registry.register_function("pg_block", block, tags=["postgres"])
    registry.register_function("pg_nap", nap, tags=["postgres"])
    registry.register_function("pg_quick", quick, tags=["postgres"])
    registry.register_function("pg_limited", limited, tags=["postgres"], max_concurrency=LIMIT)
    for name, (fn, options) in FAULTY_TASKS.items():
        registry.register_function(f"pg_{name}", fn, tags=["postgres", "faults"], **options)


register_tasks(TaskRegistry)
