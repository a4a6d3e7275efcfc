"""Python client of the taskexec REST API: submit tasks, wait for results, follow jobs."""

from taskexec_client._version import __version__
from taskexec_client.client import AsyncClient, Client
from taskexec_client.config import RetryPolicy
from taskexec_client.core import JobOptions
from taskexec_client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    JobCanceled,
    JobFailed,
    JobNotFinished,
    NotFound,
    ServerUnavailable,
    TaskexecError,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)
from taskexec_client.models import (
    Artifact,
    BatchItem,
    Job,
    JobError,
    JobEvent,
    JobPage,
    LogLine,
    Parameter,
    TaskInfo,
)

__all__ = [
    "Artifact",
    "AsyncClient",
    "BadRequest",
    "BatchItem",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Job",
    "JobCanceled",
    "JobError",
    "JobEvent",
    "JobFailed",
    "JobNotFinished",
    "JobOptions",
    "JobPage",
    "LogLine",
    "NotFound",
    "Parameter",
    "RetryPolicy",
    "ServerUnavailable",
    "TaskInfo",
    "TaskexecError",
    "Unauthorized",
    "ValidationFailed",
    "WaitTimeout",
    "__version__",
]
