"""The job table. Each row is a queue entry and the record of its runs."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdColumnType, JSONType, UTCDateTime


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    # A parent whose attempt waits for its children: it keeps its lease, holds no slot.
    WAITING = "waiting"
    # A running sync task was asked to cancel; its thread has not ended yet.
    CANCELING = "canceling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})
# Statuses of a job some worker holds (under a lease).
ACTIVE_STATUSES = frozenset({JobStatus.RUNNING, JobStatus.CANCELING})
# Statuses under a lease: the active ones, and a parent waiting for its children (which holds
# no concurrency slot, so it is not counted against any limit).
LEASED_STATUSES = ACTIVE_STATUSES | {JobStatus.WAITING}


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # Lease recovery and worker-owned lookups.
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        Index("ix_jobs_task_name", "task_name", "id"),
        # A schedule's fire: one job per (schedule, fire time), whatever the number of processes.
        UniqueConstraint("schedule_id", "scheduled_for"),
        # A child's identity under its parent (re-attached when the parent re-runs); also
        # serves `?parent_id=` and walking a flow's tree level by level.
        Index("uq_jobs_parent_child_key", "parent_id", "child_key", unique=True),
        # Every job of a flow (the root's stream, cancelling a flow).
        Index("ix_jobs_root_id", "root_id", "id"),
    )

    id: Mapped[str] = mapped_column(IdColumnType(), primary_key=True)
    task_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Flows: the job that spawned this one, the flow's first job (None for a root), the
    # position in a `ctx.map`, and the child's identity under its parent.
    parent_id: Mapped[str | None] = mapped_column(
        IdColumnType(), ForeignKey("jobs.id", ondelete="CASCADE")
    )
    root_id: Mapped[str | None] = mapped_column(IdColumnType())
    map_index: Mapped[int | None] = mapped_column(Integer)
    child_key: Mapped[str | None] = mapped_column(String(120))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    progress: Mapped[float | None]
    progress_message: Mapped[str | None] = mapped_column(Text)
    result_artifact_id: Mapped[str | None] = mapped_column(IdColumnType())
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    timeout_seconds: Mapped[float | None] = mapped_column(Float)
    # Unique while the job exists: a repeated `$execute` with the key returns this job.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # Fingerprint of task name and params, to tell a replay from a conflicting reuse of a key.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # The last event sequence number handed out for this job (see JobEvent).
    event_seq: Mapped[int] = mapped_column(Integer, default=0)
    # The id of the HTTP request that created the job, for log correlation.
    request_id: Mapped[str | None] = mapped_column(String(100))
    # Times a worker died while running the job (each re-queued it without using an attempt),
    # and how many such losses it may take before it fails `WorkerLost`.
    worker_losses: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    max_worker_losses: Mapped[int] = mapped_column(Integer, default=3, server_default=text("3"))
    # Set on a schedule's fires. A plain value, not a foreign key: deleting a schedule leaves
    # its jobs (and this link to it) as they are.
    schedule_id: Mapped[str | None] = mapped_column(IdColumnType())
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Result caching: the job whose result this one reused, and this job's cache key.
    cached_from: Mapped[str | None] = mapped_column(IdColumnType())
    cache_key: Mapped[str | None] = mapped_column(String(64))
    # Where to POST the job's summary when it ends (see app/jobs/callbacks.py).
    callback_url: Mapped[str | None] = mapped_column(String(2048))


class JobAttempt(Base):
    """One attempt of a job: when it ran and how it ended."""

    __tablename__ = "job_attempts"

    job_id: Mapped[str] = mapped_column(
        IdColumnType(), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    worker_id: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


# The claim query walks this index: eligible pending jobs, highest priority first, then oldest;
# it carries the task name so a worker skips tasks it lacks without reading the rows.
Index("ix_jobs_claim_order", Job.status, Job.priority.desc(), Job.run_at, Job.id, Job.task_name)
# The job list filtered by status, newest first (and its bounded count).
Index("ix_jobs_status_id", Job.status, Job.id)


class JobEvent(Base):
    """Something that happened to a job: a state change, attempt, progress update or log line.

    `seq` counts from 1 per job, without gaps. Writers take it from `jobs.event_seq` while they
    hold the job's row, so a reader never sees event N+1 before event N is committed.
    """

    __tablename__ = "job_events"

    job_id: Mapped[str] = mapped_column(
        IdColumnType(), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)


class JobWait(Base):
    """A child a waiting parent's attempt awaits. The transaction that finishes a child deletes
    its row and, when the parent has none left (or fail-fast applies), wakes the parent."""

    __tablename__ = "job_waits"

    parent_id: Mapped[str] = mapped_column(
        IdColumnType(), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    child_id: Mapped[str] = mapped_column(IdColumnType(), primary_key=True)
    # Wake the parent as soon as one awaited child fails or is canceled.
    fail_fast: Mapped[bool] = mapped_column(Boolean)
