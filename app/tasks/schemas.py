"""Task metadata as the API shows it."""

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from app.artifacts.schemas import ArtifactRead
from app.jobs.schemas import JobDetail


class ParameterInfo(BaseModel):
    """One request parameter of a task."""

    name: str
    annotation: str | None = Field(description="The type annotation, as written.")
    default: str | None = Field(description="repr() of the default, or null when required.")
    required: bool


class TaskOptionsRead(BaseModel):
    """Execution options a task was registered with."""

    executor: str
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

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict, examples=[{"name": "Alice"}])
    priority: int | None = Field(
        default=None, ge=-1_000_000, le=1_000_000, description="Higher runs first."
    )
    delay: float | None = Field(
        default=None, ge=0, le=366 * 86400, description="Seconds to wait before running."
    )
    run_at: AwareDatetime | None = Field(default=None, description="Earliest start time.")
    timeout: float | None = Field(default=None, gt=0, le=366 * 86400, description="Seconds.")
    retries: int | None = Field(default=None, ge=0, le=100)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)

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
