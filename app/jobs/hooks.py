"""In-process hooks: an object with any of `on_job_started`, `on_job_finished`,
`on_job_retrying` and `on_cache_hit` (each `async def hook(job: JobRead) -> None`).

Hooks run after the change they report has committed, one at a time in the order the
changes happened, each within `TASKEXEC_HOOK_TIMEOUT_SECONDS`. A hook that raises or hangs is
logged and abandoned; it never changes a job and never holds up a worker (the queue of
pending calls is bounded; past it, calls are dropped with a warning).
"""

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Iterable

from app.db.database import Database
from app.jobs.models import Job
from app.jobs.schemas import JobRead

logger = logging.getLogger(__name__)

HOOK_NAMES = ("on_job_started", "on_job_finished", "on_job_retrying", "on_cache_hit")
MAX_QUEUED_CALLS = 10_000


def check_hooks(hooks: object) -> None:
    """`TypeError` unless `hooks` has at least one hook and every hook it has is async."""
    found = [name for name in HOOK_NAMES if getattr(hooks, name, None) is not None]
    if not found:
        raise TypeError(f"a hooks object needs at least one of: {', '.join(HOOK_NAMES)}")
    for name in found:
        if not inspect.iscoroutinefunction(getattr(hooks, name)):
            raise TypeError(f"hook {name} must be an async function")


class HookDispatcher:
    """Calls the hooks of one process, fed (without blocking) by the worker and scheduler."""

    def __init__(
        self,
        hooks: object,
        database: Database,
        *,
        timeout: float,
        max_queued: int = MAX_QUEUED_CALLS,
    ) -> None:
        check_hooks(hooks)
        self.hooks = hooks
        self.database = database
        self.timeout = timeout
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(max_queued)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hooks")

    async def stop(self, grace: float = 1.0) -> None:
        """Give queued calls `grace` seconds, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # Feeds: called after the change committed.
    def jobs_started(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self._put("on_job_started", job_id)

    def attempt_recorded(self, job_id: str, *, retrying: bool) -> None:
        self._put("on_job_retrying" if retrying else "on_job_finished", job_id)

    def job_finished(self, job_id: str) -> None:
        self._put("on_job_finished", job_id)

    def cache_hit(self, job_id: str) -> None:
        self._put("on_cache_hit", job_id)

    def _put(self, name: str, job_id: str) -> None:
        if getattr(self.hooks, name, None) is None:
            return
        try:
            self._queue.put_nowait((name, job_id))
        except asyncio.QueueFull:
            self.dropped += 1
            logger.warning("hook queue full; call dropped", extra={"hook": name, "job_id": job_id})

    async def _run(self) -> None:
        while True:
            name, job_id = await self._queue.get()
            try:
                await self._call(name, job_id)
            finally:
                self._queue.task_done()

    async def _call(self, name: str, job_id: str) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                async with self.database.read_session() as session:
                    job = await session.get(Job, job_id)
                if job is None:
                    return
                await getattr(self.hooks, name)(JobRead.from_job(job))
        except TimeoutError:
            logger.error(
                "hook timed out", extra={"hook": name, "job_id": job_id, "seconds": self.timeout}
            )
        except (Exception, SystemExit, KeyboardInterrupt):
            logger.exception("hook raised", extra={"hook": name, "job_id": job_id})
