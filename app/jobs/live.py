"""Following a job without polling: wait for it to finish, or stream its events.

Both wake on the `EventBus` (a local write or a PostgreSQL NOTIFY from another process) and
read the database only then; a slow re-check covers set-ups where no notification can arrive
(a SQLite worker in another process).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from app.db.database import Database
from app.jobs.events import TERMINAL_EVENTS, EventBus
from app.jobs.models import JobStatus
from app.jobs.repository import JobRepository
from app.jobs.schemas import JobEventRead

RECHECK_SECONDS = 5.0
BATCH = 500


async def wait_until(
    bus: EventBus, job_id: str, seconds: float, check: Callable[[], Awaitable[bool]]
) -> bool:
    """Call `check` now and after each event of `job_id` until it is True or `seconds` pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with bus.subscribe(job_id) as wake:
        while True:
            wake.clear()
            if await check():
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(remaining, RECHECK_SECONDS))


async def stream_events(
    database: Database, bus: EventBus, job_id: str, after: int, *, max_bytes: int | None = None
) -> AsyncIterator[JobEventRead]:
    """Yield the job's events after `after`, live, ending with its terminal event.

    Events are read in batches of at most `BATCH` events and `max_bytes` of their data, so a
    stream holds a bounded amount in memory whatever the events' sizes (a client that stops
    reading blocks the next batch; the server closes its connection after a write timeout).
    If the job is deleted, or finished before events were recorded, the stream ends too.
    """
    last = after
    with bus.subscribe(job_id) as wake:
        while True:
            wake.clear()
            async with database.read_session() as session:
                repo = JobRepository(session)
                events = await repo.events_after(
                    job_id, after=last, limit=BATCH, max_bytes=max_bytes
                )
                if not events:
                    job = await repo.get(job_id)
                    if job is None or (JobStatus(job.status).is_terminal and job.event_seq <= last):
                        return
            full = len(events) == BATCH or (max_bytes is not None and bool(events))
            # Popped as they are sent, so what was sent is not held while the client reads.
            events.reverse()
            while events:
                read = JobEventRead.model_validate(events.pop())
                last = read.seq
                yield read
                if read.type in TERMINAL_EVENTS:
                    return
            if full:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), RECHECK_SECONDS)
