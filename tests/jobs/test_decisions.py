"""What happens to a job next: the pure decisions, without a database."""

from datetime import UTC, datetime, timedelta

import pytest

from app.jobs.decisions import (
    AttemptFacts,
    AttemptOutcome,
    Finish,
    LostFacts,
    Requeue,
    Retry,
    RetryPolicy,
    backoff_delay,
    decide_attempt,
    decide_lost,
    not_storable,
    summary_of,
)
from app.jobs.models import JobStatus

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ERROR = {"type": "ValueError", "message": "boom", "traceback": "Traceback ..."}
FAILED = AttemptOutcome(JobStatus.FAILED, ERROR, ValueError)
POLICY = RetryPolicy(backoff=2.0, backoff_max=60.0, retry_on=(ValueError,), jitter=0.0)


def decide(
    outcome: AttemptOutcome = FAILED,
    *,
    attempt: int = 1,
    max_attempts: int = 3,
    cancel_requested: bool = False,
    policy: RetryPolicy | None = POLICY,
    draw: float = 0.0,
) -> Finish | Retry:
    facts = AttemptFacts(attempt, max_attempts, cancel_requested)
    return decide_attempt("J1", facts, outcome, policy, now=NOW, draw=draw)


def test_a_success_finishes_completed() -> None:
    assert decide(AttemptOutcome(JobStatus.COMPLETED, has_result=True)) == Finish(
        JobStatus.COMPLETED
    )


def test_a_failure_with_attempts_left_retries_after_the_backoff() -> None:
    assert decide(attempt=1) == Retry(NOW + timedelta(seconds=2), ERROR)
    assert decide(attempt=2) == Retry(NOW + timedelta(seconds=4), ERROR)


def test_the_last_attempt_fails() -> None:
    verdict = decide(attempt=3, max_attempts=3)
    assert verdict == Finish(JobStatus.FAILED, ERROR)
    assert verdict.summary == {"type": "ValueError", "message": "boom"}


def test_an_exception_the_task_does_not_retry_on_fails_at_once() -> None:
    outcome = AttemptOutcome(JobStatus.FAILED, ERROR, KeyError)
    assert decide(outcome) == Finish(JobStatus.FAILED, ERROR)


def test_a_subclass_of_a_retried_exception_is_retried() -> None:
    class Specific(ValueError):
        pass

    assert isinstance(decide(AttemptOutcome(JobStatus.FAILED, ERROR, Specific)), Retry)


def test_an_unknown_task_or_an_error_without_exception_is_not_retried() -> None:
    assert decide(policy=None) == Finish(JobStatus.FAILED, ERROR)
    assert decide(AttemptOutcome(JobStatus.FAILED, ERROR, None)) == Finish(JobStatus.FAILED, ERROR)


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED])
def test_a_cancel_request_is_honoured_whatever_the_code_did(status: JobStatus) -> None:
    outcome = AttemptOutcome(status, ERROR if status is JobStatus.FAILED else None, ValueError)

    verdict = decide(outcome, cancel_requested=True)

    assert isinstance(verdict, Finish)
    assert verdict.status is JobStatus.CANCELED
    assert verdict.error is not None
    assert verdict.error["type"] == "JobCancelledError"
    ended = "with a result" if status is JobStatus.COMPLETED else "with an error"
    assert ended in verdict.error["message"]


def test_a_canceled_attempt_stays_canceled() -> None:
    error = {"type": "JobCancelledError", "message": "canceled", "traceback": None}
    outcome = AttemptOutcome(JobStatus.CANCELED, error)
    assert decide(outcome, cancel_requested=True) == Finish(JobStatus.CANCELED, error)


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    assert [backoff_delay(n, 1.0, 300.0, jitter=0, draw=0.7) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff_delay(20, 1.0, 30.0, jitter=0, draw=0.7) == 30.0
    assert backoff_delay(3, 0.0, 30.0, jitter=0.5, draw=0.7) == 0.0


def test_backoff_jitter_takes_its_share_from_the_draw() -> None:
    assert backoff_delay(3, 1.0, 300.0, jitter=0.5, draw=0.0) == 2.0
    assert backoff_delay(3, 1.0, 300.0, jitter=0.5, draw=0.5) == 3.0
    assert backoff_delay(3, 1.0, 300.0, jitter=0.5, draw=0.999) == pytest.approx(3.998)
    policy = RetryPolicy(backoff=1.0, backoff_max=300.0, retry_on=(ValueError,), jitter=1.0)
    assert decide(policy=policy, attempt=2, draw=0.25) == Retry(NOW + timedelta(seconds=0.5), ERROR)


def lost(**values: int | bool) -> LostFacts:
    fields: dict[str, int | bool] = {
        "attempt": 1,
        "max_attempts": 1,
        "worker_losses": 0,
        "max_worker_losses": 3,
    }
    fields.update(values)
    return LostFacts(
        attempt=int(fields["attempt"]),
        max_attempts=int(fields["max_attempts"]),
        worker_losses=int(fields["worker_losses"]),
        max_worker_losses=int(fields["max_worker_losses"]),
        cancel_requested=bool(fields.get("cancel_requested", False)),
    )


def test_a_lost_job_is_requeued_without_using_an_attempt() -> None:
    verdict = decide_lost("J1", lost(attempt=1, max_attempts=1))
    assert isinstance(verdict, Requeue)
    assert verdict.worker_losses == 1
    assert verdict.summary is not None
    assert verdict.summary["type"] == "WorkerLost"


def test_a_lost_job_is_requeued_up_to_max_worker_losses_then_fails() -> None:
    third = decide_lost("J1", lost(worker_losses=2))
    assert isinstance(third, Requeue)
    assert third.worker_losses == 3
    verdict = decide_lost("J1", lost(worker_losses=3))
    assert isinstance(verdict, Finish)
    assert verdict.status is JobStatus.FAILED
    assert verdict.error is not None
    assert verdict.error["type"] == "WorkerLost"
    assert "4 times" in verdict.error["message"]


def test_max_worker_losses_of_zero_fails_at_the_first_loss() -> None:
    verdict = decide_lost("J1", lost(max_worker_losses=0))
    assert isinstance(verdict, Finish)
    assert verdict.status is JobStatus.FAILED


def test_a_lost_job_asked_to_cancel_ends_canceled() -> None:
    verdict = decide_lost("J1", lost(cancel_requested=True))
    assert isinstance(verdict, Finish)
    assert verdict.status is JobStatus.CANCELED
    assert verdict.error is not None
    assert verdict.error["type"] == "JobCancelledError"


@pytest.mark.parametrize(
    ("status", "what"), [(JobStatus.COMPLETED, "result"), (JobStatus.FAILED, "error")]
)
def test_a_value_the_database_refused_fails_the_job(status: JobStatus, what: str) -> None:
    verdict = not_storable(status, "UntranslatableCharacterError: \\u0000")
    assert verdict.status is JobStatus.FAILED
    assert verdict.summary == {
        "type": "ResultNotStorable",
        "message": f"the task's {what} could not be stored: UntranslatableCharacterError: \\u0000",
    }


def test_summary_drops_the_traceback() -> None:
    assert summary_of(None) is None
    assert summary_of(ERROR) == {"type": "ValueError", "message": "boom"}
