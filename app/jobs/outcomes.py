"""From a run's `Outcome` to the store: the decision's inputs, and values the database refused."""

from dataclasses import replace
from datetime import datetime

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from app.jobs.decisions import (
    AttemptFacts,
    AttemptOutcome,
    Finish,
    RetryPolicy,
    Verdict,
    decide_attempt,
    not_storable,
)
from app.jobs.models import JobStatus
from app.jobs.runner import Outcome
from app.jobs.store import AttemptEnd
from app.jobs.store.claimed import ClaimedJob
from app.tasks.registry import TaskDefinition

# SQLSTATE classes of errors about the values written: 22 data exception (e.g. 22P05, a NUL
# in JSONB), 23 integrity constraint violation. Anything else may pass with a retry.
DATA_SQLSTATE_CLASSES = frozenset({"22", "23"})


def retry_policy(definition: TaskDefinition | None) -> RetryPolicy | None:
    if definition is None:
        return None
    options = definition.options
    return RetryPolicy(options.retry_backoff, options.retry_backoff_max, options.retry_on)


def decide(
    job: ClaimedJob,
    definition: TaskDefinition | None,
    outcome: Outcome,
    *,
    cancel_requested: bool,
    now: datetime,
    draw: float,
) -> Verdict:
    """What this attempt means (decided once; see `decide_attempt`)."""
    facts = AttemptFacts(job.attempts, job.max_attempts, cancel_requested)
    ended = AttemptOutcome(
        status=outcome.status,
        error=outcome.error,
        exception_type=None if outcome.exception is None else type(outcome.exception),
        has_result=outcome.result is not None,
    )
    return decide_attempt(job.id, facts, ended, retry_policy(definition), now=now, draw=draw)


def unstorable_reason(exc: BaseException) -> str | None:
    """Why the database refused the written values, or None when the failure is not about the
    data (a lost connection, a database that is down: worth retrying)."""
    if isinstance(exc, DataError | IntegrityError) or (
        isinstance(exc, DBAPIError) and _sqlstate(exc)[:2] in DATA_SQLSTATE_CLASSES
    ):
        cause = _root(exc)
        first_line = str(cause).splitlines()[0] if str(cause) else ""
        return f"{type(cause).__name__}: {first_line}"
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        # Failed while binding parameters, before anything reached the database.
        return f"{type(exc.orig).__name__}: {exc.orig}"
    if isinstance(exc, TypeError | ValueError):
        return f"{type(exc).__name__}: {exc}"
    return None


def _root(exc: BaseException) -> BaseException:
    """The driver's own exception under SQLAlchemy's wrappers."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _sqlstate(exc: BaseException) -> str:
    """The PostgreSQL SQLSTATE anywhere in the exception's chain ("" when there is none)."""
    current: BaseException | None = exc
    for _ in range(10):  # a chain of wrappers, never a cycle
        if current is None:
            break
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str):
            return state
        current = current.__cause__ or getattr(current, "orig", None)
    return ""


def not_storable_end(end: AttemptEnd, reason: str) -> AttemptEnd:
    """The same attempt, failed `ResultNotStorable` with nothing of the refused value kept."""
    status = end.verdict.status if isinstance(end.verdict, Finish) else JobStatus.FAILED
    return replace(end, verdict=not_storable(status, _printable(reason)), result=None)


def _printable(text: str, limit: int = 500) -> str:
    """`text` without NUL and other control characters (they may be why it was refused)."""
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else "?" for ch in text)
    return cleaned[:limit]
