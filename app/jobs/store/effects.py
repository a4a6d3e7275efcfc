"""What a committed change means outside the database: wake-ups, bus messages, metrics, logs.

Store methods collect these as an `Effects` value while they write; nothing in it runs until the
transaction that made the change has committed (`AfterCommit.apply`, or `AfterCommit.defer`
for a change made inside a caller's session). A rolled-back change leaves no trace.
"""

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from app.core.metrics import Metrics
from app.jobs.events import EventBus

logger = logging.getLogger("app.jobs.store")

_DEFERRED_KEY = "taskexec_after_commit"


class LocalWorker(Protocol):
    """The worker running in this process, as the store and the scheduler see it."""

    def notify(self) -> None:
        """Look for work now: a job was queued or a slot freed."""

    def cancel_local(self, job_id: str) -> bool:
        """Stop `job_id` if this worker runs it."""


@dataclass(frozen=True)
class LogLine:
    level: int
    message: str
    extra: dict[str, object]


@dataclass
class Effects:
    """The consequences of one change, to apply after it commits."""

    changed: list[str] = field(default_factory=list)  # job ids with new events
    queued: list[tuple[str, str]] = field(default_factory=list)  # (job id, task name)
    finished: list[tuple[str, str]] = field(default_factory=list)  # (task name, status)
    attempt_seconds: list[tuple[str, float]] = field(default_factory=list)  # (task, seconds)
    cancel: list[str] = field(default_factory=list)  # running jobs asked to cancel
    wake: bool = False  # new work for a local worker
    logs: list[LogLine] = field(default_factory=list)

    def merge(self, other: "Effects") -> "Effects":
        self.changed += other.changed
        self.queued += other.queued
        self.finished += other.finished
        self.attempt_seconds += other.attempt_seconds
        self.cancel += other.cancel
        self.wake = self.wake or other.wake
        self.logs += other.logs
        return self

    def log(self, level: int, message: str, **extra: object) -> None:
        self.logs.append(LogLine(level, message, extra))


class AfterCommit:
    """Applies effects: the process's bus, metrics and local worker."""

    def __init__(self, bus: EventBus, metrics: Metrics | None = None) -> None:
        self.bus = bus
        self.metrics = metrics
        self.worker: LocalWorker | None = None

    def apply(self, effects: Effects) -> None:
        """Run `effects`; call only once the change is committed."""
        if effects.changed:
            self.bus.publish(effects.changed)
        worker = self.worker
        if worker is not None:
            if effects.wake or effects.queued:
                worker.notify()
            for job_id in effects.cancel:
                worker.cancel_local(job_id)
        if self.metrics is not None:
            for _, task_name in effects.queued:
                self.metrics.jobs_submitted.labels(task_name).inc()
            for (task_name, status), count in Counter(effects.finished).items():
                self.metrics.jobs_finished.labels(task_name, status).inc(count)
            for task_name, seconds in effects.attempt_seconds:
                self.metrics.attempt_seconds.labels(task_name).observe(seconds)
        if logger.isEnabledFor(logging.INFO):
            for job_id, task_name in effects.queued:
                logger.info("job queued", extra={"job_id": job_id, "task_name": task_name})
        for line in effects.logs:
            logger.log(line.level, line.message, extra=line.extra)

    def apply_all(self, batch: Iterable[Effects]) -> None:
        """Run the effects of a committed batch of changes together."""
        merged = Effects()
        for effects in batch:
            merged.merge(effects)
        self.apply(merged)

    def defer(self, session: AsyncSession, effects: Effects) -> None:
        """Apply `effects` when `session`'s transaction commits; drop them if it rolls back."""
        sync = session.sync_session
        key = f"{_DEFERRED_KEY}:{id(self)}"
        pending: Effects | None = sync.info.get(key)
        if pending is not None:
            pending.merge(effects)
            return
        sync.info[key] = effects
        if sync.info.get(f"{key}:hooked"):
            return
        sync.info[f"{key}:hooked"] = True

        def committed(done: Session) -> None:
            ready: Effects | None = done.info.pop(key, None)
            if ready is not None:
                self.apply(ready)

        def ended(done: Session, transaction: SessionTransaction) -> None:
            # The outermost transaction ended without a commit (rolled back, or closed).
            if transaction.parent is None:
                done.info.pop(key, None)

        event.listen(sync, "after_commit", committed)
        event.listen(sync, "after_transaction_end", ended)
