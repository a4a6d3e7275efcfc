"""Tasks for following running jobs end to end (`TASKEXEC_TASK_MODULES=...,tests.e2e.live_tasks`).

`live_steps` logs and reports progress, then waits for a release file, so a test can watch
it while it runs and decide when it ends.
"""

import asyncio
import time
from pathlib import Path

from app.jobs.context import JobContext
from app.tasks.registry import TaskRegistry

POLL_SECONDS = 0.01


class NotReleasedError(TimeoutError):
    """The release file did not appear within the task's `max_wait`."""


@TaskRegistry.register("live_steps", tags=["e2e", "live"])
async def live_steps(release: str, ctx: JobContext, max_wait: float = 30.0) -> dict[str, int]:
    """Log and report progress, wait for the file `release`, then log and finish."""
    ctx.logger.info("first step")
    ctx.progress(1, 4, message="one of four")
    deadline = time.monotonic() + max_wait
    path = Path(release)
    # One stat of a local file per poll: too cheap to be worth a thread hop.
    while not path.exists():  # noqa: ASYNC240
        if time.monotonic() >= deadline:
            raise NotReleasedError(f"not released within {max_wait} s")
        await asyncio.sleep(POLL_SECONDS)
    ctx.logger.info("last step")
    ctx.progress(4, 4, message="four of four")
    return {"steps": 2}
