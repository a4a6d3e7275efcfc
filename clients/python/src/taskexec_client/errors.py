"""Exceptions: problem+json answers as types, and failed jobs."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskexec_client.models import Job


class TaskexecError(Exception):
    """Base of every error the client raises.

    For an error answer of the server, `status` is its HTTP status and `code`, `title`,
    `detail`, `instance` and `errors` come from its problem+json body (RFC 9457).
    """

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        instance: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = code
        self.title = title
        self.instance = instance
        self.errors = errors or []


class BadRequest(TaskexecError):
    """400: the request was not valid (a malformed id, a wait over the server's cap, ...)."""


class ValidationFailed(BadRequest):
    """400 `validation_error`: `errors` has one entry per problem (`loc`, `msg`, `type`)."""


class Unauthorized(TaskexecError):
    """401 or 403: a valid API key is required (`api_key=` or `TASKEXEC_API_KEY`)."""


class NotFound(TaskexecError):
    """404: no such task, job or artifact."""


class Conflict(TaskexecError):
    """409: e.g. cancelling a finished job, or an idempotency key reused with other params."""


class ServerUnavailable(TaskexecError):
    """The server answered 429, 502, 503 or 504 on every attempt (e.g. its database is down)."""


class ConnectionFailed(ServerUnavailable):
    """The server could not be reached (connection refused, reset or timed out) on every try."""


class WaitTimeout(TaskexecError, TimeoutError):
    """The job did not finish before the caller's deadline; it goes on running."""

    def __init__(self, job: "Job", timeout: float) -> None:
        super().__init__(f"job {job.id} is still {job.status} after {timeout:g} s")
        self.job = job
        self.timeout = timeout


class JobNotFinished(TaskexecError):
    """`result()` of a job that has not finished yet (use `wait()` or `run()`)."""

    def __init__(self, job: "Job") -> None:
        super().__init__(f"job {job.id} is {job.status}; it has no result yet")
        self.job = job


class JobFailed(TaskexecError):
    """The job failed: `error_type`, `message` and `traceback` are the remote exception's.

    The traceback is the one stored in the job's result artifact (server file paths removed
    unless the server exposes them); it is None when the job has no artifact.
    """

    def __init__(
        self, job: "Job", error_type: str, message: str, traceback: str | None = None
    ) -> None:
        super().__init__(f"job {job.id} ({job.task_name}) {job.status}: {error_type}: {message}")
        self.job = job
        self.job_id = job.id
        self.error_type = error_type
        self.message = message
        self.traceback = traceback


class JobCanceled(JobFailed):
    """The job was canceled (a kind of `JobFailed`: it has no result to return)."""


_BY_STATUS: dict[int, type[TaskexecError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    429: ServerUnavailable,
    502: ServerUnavailable,
    503: ServerUnavailable,
    504: ServerUnavailable,
}


def error_for(status: int, body: Any) -> TaskexecError:
    """The exception for an error answer; `body` is its decoded JSON (or None)."""
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    code = _text(problem.get("code"))
    kind = _BY_STATUS.get(status, TaskexecError)
    if status == 400 and code == "validation_error":
        kind = ValidationFailed
    raw_errors = problem.get("errors")
    errors = [e for e in raw_errors if isinstance(e, dict)] if isinstance(raw_errors, list) else []
    title = _text(problem.get("title"))
    detail = _text(problem.get("detail")) or title or f"HTTP {status}"
    return kind(
        detail,
        status=status,
        code=code,
        title=title,
        instance=_text(problem.get("instance")),
        errors=errors,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
