"""What happens to a job next: pure functions over frozen values, no I/O.

The store writes what these decide; the worker decides once per attempt. Every way a job ends
(an attempt's outcome, a lost worker, a value the database refused) goes through `finish`.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.jobs.models import JobStatus

ErrorRecord = Mapping[str, Any]  # {"type", "message", "traceback"?}


@dataclass(frozen=True)
class RetryPolicy:
    """A task's retry options."""

    backoff: float = 1.0
    backoff_max: float = 300.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    jitter: float = 0.5


@dataclass(frozen=True)
class AttemptFacts:
    """The job as it stood when one of its attempts ended."""

    attempt: int
    max_attempts: int
    cancel_requested: bool = False


@dataclass(frozen=True)
class AttemptOutcome:
    """How the task's code ended: its status, error record and the exception's type."""

    status: JobStatus
    error: ErrorRecord | None = None
    exception_type: type[BaseException] | None = None
    has_result: bool = False


@dataclass(frozen=True)
class Finish:
    """The job ends with `status`; `error` is the full record (with traceback) or None."""

    status: JobStatus
    error: ErrorRecord | None = None

    @property
    def summary(self) -> dict[str, Any] | None:
        return summary_of(self.error)


@dataclass(frozen=True)
class Retry:
    """Run the job again at `run_at`; this attempt failed with `error`."""

    run_at: datetime
    error: ErrorRecord

    @property
    def summary(self) -> dict[str, Any] | None:
        return summary_of(self.error)


@dataclass(frozen=True)
class Requeue:
    """Put a lost job back in the queue without counting its attempt."""

    worker_losses: int
    error: ErrorRecord

    @property
    def summary(self) -> dict[str, Any] | None:
        return summary_of(self.error)


Verdict = Finish | Retry


def summary_of(error: ErrorRecord | None) -> dict[str, Any] | None:
    """The error as the job row shows it: type and message, no traceback."""
    if error is None:
        return None
    return {"type": error["type"], "message": error["message"]}


def backoff_delay(attempt: int, base: float, cap: float, jitter: float, draw: float) -> float:
    """Exponential backoff for `attempt` (1-based): `jitter` in [0, 1] is the share of the
    delay that is random, `draw` in [0, 1) the random number that picks it."""
    if base <= 0:
        return 0.0
    delay = min(cap, base * math.pow(2, attempt - 1))
    return delay * (1 - jitter) + delay * jitter * draw


def cancel_error(message: str, traceback: str | None = None) -> dict[str, Any]:
    return {"type": "JobCancelledError", "message": message, "traceback": traceback}


def decide_attempt(
    job_id: str,
    facts: AttemptFacts,
    outcome: AttemptOutcome,
    policy: RetryPolicy | None,
    *,
    now: datetime,
    draw: float,
) -> Verdict:
    """Decide once what an ended attempt means: finish, retry at a time, fail, or cancel.

    A job whose cancellation was requested ends `canceled` even if its code ran to the end
    regardless (a result it returned is kept in the artifact). A failure is retried while
    attempts are left and its exception is one the task retries on; `policy` is None when the
    worker does not know the task.
    """
    if facts.cancel_requested and outcome.status is not JobStatus.CANCELED:
        ended = "with a result" if outcome.status is JobStatus.COMPLETED else "with an error"
        traceback = outcome.error.get("traceback") if outcome.error else None
        message = (
            f"job {job_id} was canceled while running; the task ended {ended} after "
            "cancellation was requested"
        )
        return Finish(JobStatus.CANCELED, cancel_error(message, traceback))
    if outcome.status is not JobStatus.FAILED or outcome.error is None:
        return Finish(outcome.status, outcome.error)
    retryable = (
        policy is not None
        and facts.attempt < facts.max_attempts
        and outcome.exception_type is not None
        and issubclass(outcome.exception_type, policy.retry_on)
    )
    if not retryable or policy is None:
        return Finish(JobStatus.FAILED, outcome.error)
    delay = backoff_delay(facts.attempt, policy.backoff, policy.backoff_max, policy.jitter, draw)
    return Retry(now + timedelta(seconds=delay), outcome.error)


@dataclass(frozen=True)
class LostFacts:
    """A job whose worker stopped (its lease expired, or its process is known to be gone)."""

    attempt: int
    max_attempts: int
    worker_losses: int
    max_worker_losses: int
    cancel_requested: bool = False


def decide_lost(job_id: str, facts: LostFacts) -> Requeue | Finish:
    """A lost worker is not the task's fault: re-queue without using an attempt, up to
    `max_worker_losses` times; past that the job fails `WorkerLost`. A job asked to cancel
    ends `canceled`."""
    losses = facts.worker_losses + 1
    interrupted = (
        f"interrupted: the worker running attempt {facts.attempt} of {facts.max_attempts} "
        "stopped before it finished"
    )
    if facts.cancel_requested:
        return Finish(JobStatus.CANCELED, cancel_error(f"canceled; {interrupted}"))
    if losses > facts.max_worker_losses:
        message = (
            f"{interrupted}; its workers were lost {losses} times "
            f"(max_worker_losses is {facts.max_worker_losses})"
        )
        return Finish(JobStatus.FAILED, {"type": "WorkerLost", "message": message})
    return Requeue(losses, {"type": "WorkerLost", "message": interrupted})


def not_storable(status: JobStatus, reason: str) -> Finish:
    """The database refused the attempt's result or error (its data, not its connection)."""
    what = "result" if status is JobStatus.COMPLETED else "error"
    message = f"the task's {what} could not be stored: {reason}"
    return Finish(JobStatus.FAILED, {"type": "ResultNotStorable", "message": message})
