"""PostgreSQL LISTEN/NOTIFY: new jobs wake idle workers at once; cancels reach the right worker.

Notifications are an optimisation: a lost one costs at most one poll interval, and after a
reconnect the worker looks for work straight away.
"""

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

logger = logging.getLogger(__name__)

JOBS_CHANNEL = "taskexec_jobs"
CANCEL_CHANNEL = "taskexec_cancel"
EVENTS_CHANNEL = "taskexec_events"


async def notify_new_jobs(session: AsyncSession) -> None:
    """Tell listening workers (when this transaction commits) that jobs were queued."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": JOBS_CHANNEL})


async def notify_cancel(session: AsyncSession, job_id: str) -> None:
    """Tell the worker running `job_id` (when this transaction commits) to cancel it."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :job_id)"),
            {"channel": CANCEL_CHANNEL, "job_id": job_id},
        )


class PostgresListener:
    """Holds one asyncpg connection that LISTENs, reconnecting with backoff when it drops."""

    def __init__(
        self,
        url: URL,
        *,
        on_jobs: Callable[[], None] | None = None,
        on_cancel: Callable[[str], object] | None = None,
        on_events: Callable[[str], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._handlers: dict[str, Callable[[str], object]] = {}
        if on_jobs is not None:
            self._handlers[JOBS_CHANNEL] = lambda _payload: on_jobs()
        if on_cancel is not None:
            self._handlers[CANCEL_CHANNEL] = on_cancel
        if on_events is not None:
            self._handlers[EVENTS_CHANNEL] = on_events
        self._on_reconnect = on_reconnect
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="postgres listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = 0.2
        while True:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                logger.warning("cannot listen for jobs; retrying", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            try:
                conn.add_termination_listener(functools.partial(_set_event, lost))
                for channel in self._handlers:
                    await conn.add_listener(channel, self._dispatch)
                self.connected.set()
                # Whatever happened while we were not listening.
                if self._on_reconnect is not None:
                    self._on_reconnect()
                await lost.wait()
                logger.warning("listen connection lost; reconnecting")
            except (OSError, asyncpg.PostgresError) as exc:
                logger.warning("listen connection failed", extra={"error": str(exc)})
            finally:
                self.connected.clear()
                if not conn.is_closed():
                    await asyncio.shield(_close(conn))

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        handler = self._handlers.get(channel)
        if handler is not None:
            handler(payload)


async def _close(conn: Any) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        conn.terminate()


def _set_event(event: asyncio.Event, _conn: Any) -> None:
    event.set()
