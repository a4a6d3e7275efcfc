"""Job events: the durable, ordered record of everything that happens to a job.

Each event has a per-job sequence number (1, 2, 3, ...). Writers take numbers from
`jobs.event_seq` while holding the job's row, so numbers never repeat and a reader that has
seen event N has seen every event before it. After a write commits, the `EventBus` wakes local
subscribers; on PostgreSQL a NOTIFY wakes the other processes' buses.
"""

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import utcnow
from app.db.base import table_of
from app.jobs.models import Job, JobEvent
from app.jobs.notify import EVENTS_CHANNEL

_NOTIFY_PAYLOAD_IDS = 250  # job ids per NOTIFY payload (PostgreSQL caps payloads at 8000 bytes)


class EventType(StrEnum):
    CREATED = "created"
    STARTED = "started"
    PROGRESS = "progress"
    LOG = "log"
    LOG_TRUNCATED = "log_truncated"
    CANCEL_REQUESTED = "cancel_requested"
    RETRYING = "retrying"
    REQUEUED = "requeued"
    RELEASED = "released"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL_EVENTS = frozenset({EventType.COMPLETED, EventType.FAILED, EventType.CANCELED})


def event_row(
    job_id: str, seq: int, type_: str, data: dict[str, Any], at: datetime
) -> dict[str, Any]:
    return {"job_id": job_id, "seq": seq, "type": str(type_), "data": data, "created_at": at}


async def insert_events(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert prepared event rows and NOTIFY other processes about their jobs."""
    if not rows:
        return
    await session.execute(insert(table_of(JobEvent)), list(rows))
    await notify_events(session, {row["job_id"] for row in rows})


async def append_events(
    session: AsyncSession, job_id: str, events: Sequence[tuple[str, dict[str, Any]]]
) -> int:
    """Append events to one job, numbering them under its row lock. Returns the last number
    (0 if the job no longer exists)."""
    if not events:
        return 0
    last = (
        await session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(event_seq=Job.event_seq + len(events))
            .returning(Job.event_seq)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if last is None:
        return 0
    now = utcnow()
    first = last - len(events) + 1
    await insert_events(
        session,
        [event_row(job_id, first + i, type_, data, now) for i, (type_, data) in enumerate(events)],
    )
    return int(last)


async def notify_events(session: AsyncSession, job_ids: Iterable[str]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    ids = sorted(set(job_ids))
    for start in range(0, len(ids), _NOTIFY_PAYLOAD_IDS):
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {
                "channel": EVENTS_CHANNEL,
                "payload": ",".join(ids[start : start + _NOTIFY_PAYLOAD_IDS]),
            },
        )


class EventBus:
    """Wakes whoever waits on a job's events. Costs nothing per waiter until a job changes."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listeners: list[Callable[[], None]] = []  # woken by any publish (callbacks)

    def listen(self, wake: Callable[[], None]) -> None:
        """Call `wake()` (cheap, non-blocking) whenever any job changes."""
        self._listeners.append(wake)

    def publish(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            for event in self._subscribers.get(job_id, ()):
                event.set()
        for wake in self._listeners:
            wake()

    def publish_payload(self, payload: str) -> None:
        """A NOTIFY payload: comma-separated job ids."""
        self.publish(filter(None, payload.split(",")))

    def publish_all(self) -> None:
        """Wake every subscriber (after a lost connection, notifications may have been missed)."""
        for events in self._subscribers.values():
            for event in events:
                event.set()

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._subscribers[job_id].add(event)
        try:
            yield event
        finally:
            subscribers = self._subscribers.get(job_id)
            if subscribers is not None:
                subscribers.discard(event)
                if not subscribers:
                    del self._subscribers[job_id]

    @property
    def subscriber_count(self) -> int:
        return sum(len(events) for events in self._subscribers.values())
