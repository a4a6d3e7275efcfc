"""Job events: the durable, ordered record of everything that happens to a job.

Each event has a per-job sequence number (1, 2, 3, ...), written by the job store (see
`app.jobs.store.rows`). After a write commits, the `EventBus` wakes local subscribers; on
PostgreSQL a NOTIFY wakes the other processes' buses.
"""

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum


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
    # Flows: a parent waits for its children, is woken by the last one, resumes; its root
    # follows each child.
    WAITING = "waiting"
    WOKEN = "woken"
    RESUMED = "resumed"
    CHILD_STARTED = "child_started"
    CHILD_FINISHED = "child_finished"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL_EVENTS = frozenset({EventType.COMPLETED, EventType.FAILED, EventType.CANCELED})


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
