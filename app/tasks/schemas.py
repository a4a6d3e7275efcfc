"""Task metadata as the API shows it."""

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from app.artifacts.schemas import ArtifactRead
from app.core.inputs import MAX_HORIZON_SECONDS, NO_NUL_PATTERN, check_start_time
from app.jobs.schemas import JobDetail


class ParameterInfo(BaseModel):
    """One request parameter of a task."""

    name: str
    annotation: str | None = Field(description="The type annotation, as written.")
    default: str | None = Field(description="repr() of the default, or null when required.")
    required: bool


class TaskOptionsRead(BaseModel):
    """Execution options a task was registered with."""

    executor: str | None = Field(
        description="Where a sync task runs: 'thread' or 'process'; null for the service's "
        "default (TASKEXEC_SYNC_EXECUTOR)."
    )
    retries: int
    retry_backoff: float
    retry_backoff_max: float
    retry_on: list[str]
    timeout: float | None
    max_concurrency: int | None
    priority: int
    description: str | None
    max_worker_losses: int | None = Field(
        description="Times a job is re-queued after its worker died (null: the service default)."
    )
    cache_ttl: float | None = Field(default=None, description="Seconds a result is reused.")
    cache_version: str | None = None
    cache_key: str | None = Field(default=None, description="The custom cache key function.")


class TaskInfo(BaseModel):
    """A registered task: what it is and how to call it."""

    name: str
    docstring: str | None
    signature: str
    parameters: list[ParameterInfo]
    tags: list[str]
    parameters_schema: dict[str, Any] = Field(
        description="JSON Schema of `params` in an `$execute` request."
    )
    injected: list[str] = Field(description="Parameters the service injects; never sent.")
    is_async: bool
    options: TaskOptionsRead


class ExecuteRequest(BaseModel):
    """Body of `$execute`. Optional: an empty or missing body means no params.

    Besides `params`, a caller may override the task's execution options for this job.
    """

    model_config = ConfigDict(
        extra="forbid",
        # `delay` and `run_at` exclude each other.
        json_schema_extra={"not": {"required": ["delay", "run_at"]}},
    )

    params: dict[str, Any] = Field(default_factory=dict, examples=[{"name": "Alice"}])
    priority: StrictInt | None = Field(
        default=None, ge=-1_000_000, le=1_000_000, description="Higher runs first."
    )
    delay: StrictFloat | None = Field(
        default=None,
        ge=0,
        le=MAX_HORIZON_SECONDS,
        description="Seconds to wait before running (at most 366 days).",
    )
    run_at: AwareDatetime | None = Field(
        default=None,
        description="Earliest start time; at most 366 days ahead (like `delay`).",
    )
    timeout: StrictFloat | None = Field(default=None, gt=0, le=366 * 86400, description="Seconds.")
    retries: StrictInt | None = Field(default=None, ge=0, le=100)
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=NO_NUL_PATTERN
    )

    cache: Literal["use", "refresh", "bypass"] | None = Field(
        default=None,
        description="For caching tasks: reuse a fresh result (`use`, the default), run anew "
        "and cache that (`refresh`), or run without the cache (`bypass`).",
    )
    callback_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        pattern=NO_NUL_PATTERN,
        description="POST the job's summary here when it ends (allowed hosts only).",
    )

    @field_validator("run_at", mode="before")
    @classmethod
    def _run_at_is_text(cls, value: object) -> object:
        # JSON has no date type: a number would be read as seconds since the epoch, which the
        # schema (an ISO 8601 date-time string) does not allow.
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("run_at must be an ISO 8601 date-time string with an offset")
        return value

    @field_validator("run_at")
    @classmethod
    def _run_at_in_range(cls, value: datetime | None) -> datetime | None:
        return None if value is None else check_start_time(value)

    @model_validator(mode="after")
    def _one_start_time(self) -> "ExecuteRequest":
        if self.delay is not None and self.run_at is not None:
            raise ValueError("give either delay or run_at, not both")
        return self


class ExecuteManyItem(ExecuteRequest):
    """One job of a batch: its params and the same per-job options as `$execute`."""


class ExecuteManyRequest(BaseModel):
    """Body of `$execute-many`: one item per job, from 1 to `TASKEXEC_MAX_BATCH` items."""

    model_config = ConfigDict(extra="forbid")

    items: list[ExecuteManyItem] = Field(
        min_length=1, examples=[[{"params": {"name": "Alice"}}, {"params": {"name": "Bob"}}]]
    )


class ExecuteManyAccepted(BaseModel):
    """Every item was queued (or, under an idempotency key, found): job ids in item order."""

    job_ids: list[str]


class ExecuteAccepted(BaseModel):
    """A job was queued."""

    job_id: str
    message: str


class ExecuteFinished(BaseModel):
    """The job finished within `?wait=`: the job and the artifact of its run, inline."""

    job_id: str
    message: str
    job: JobDetail
    artifact: ArtifactRead | None


class CacheForgotten(BaseModel):
    """The cache entries of a task were dropped."""

    task_name: str
    forgotten: int = Field(description="How many cache keys were dropped.")
