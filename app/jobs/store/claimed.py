"""`ClaimedJob`: a claimed job as the worker runs it, a plain immutable value.

A claim returns these instead of ORM `Job` objects: nothing tracks them, and making one from
a row costs a tuple unpacking, not the ORM's per-attribute instrumentation.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column

from app.jobs.models import Job, JobStatus
from app.jobs.store.rows import JOBS


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """The columns of a running job its attempt needs, as they were when it was claimed."""

    # Set by the claim.
    started_at: datetime
    worker_id: str
    lease_expires_at: datetime
    # Read back by the claim (`CLAIMED_COLUMNS`).
    id: str
    task_name: str
    params: dict[str, Any]
    parent_id: str | None
    root_id: str | None
    map_index: int | None
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    timeout_seconds: float | None
    request_id: str | None
    scheduled_for: datetime | None
    worker_losses: int
    event_seq: int
    status: str = JobStatus.RUNNING


# The columns a claim returns, in the order of `ClaimedJob`'s fields after the first three.
CLAIMED_COLUMNS: tuple[Column[Any], ...] = tuple(
    JOBS.c[name]
    for name in (
        "id",
        "task_name",
        "params",
        "parent_id",
        "root_id",
        "map_index",
        "priority",
        "run_at",
        "attempts",
        "max_attempts",
        "timeout_seconds",
        "request_id",
        "scheduled_for",
        "worker_losses",
        "event_seq",
    )
)

# What a job's attempt reads of it: a claimed value, or an ORM row (recovery, tests).
JobFacts = ClaimedJob | Job


def claim_order(job: ClaimedJob) -> tuple[int, datetime, str]:
    """Highest priority first, then earliest `run_at`, then oldest."""
    return (-job.priority, job.run_at, job.id)
