"""Job schemas as the API shows them."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.clock import Timestamp
from app.jobs.models import Job, JobStatus


class JobError(BaseModel):
    """Why a job failed or was canceled: the exception type and message."""

    type: str
    message: str


class JobRead(BaseModel):
    """A job: one request to run a task, with its state and a link to its result."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    task_name: str
    status: JobStatus
    params: dict[str, Any]
    parent_id: str | None = Field(description="The job that spawned this one (flows).")
    root_id: str = Field(description="The first job of its flow; its own id for a root.")
    map_index: int | None = Field(description="Its position in the parent's `ctx.map`.")
    priority: int
    created_at: Timestamp
    run_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    attempts: int
    max_attempts: int
    error: JobError | None
    progress: float | None
    progress_message: str | None
    result: str | None = Field(
        description="Id of the artifact that records the run (read it at /api/v1/artifacts/{id})."
    )
    cancel_requested: bool
    timeout: float | None = Field(description="Seconds an attempt may run.")
    idempotency_key: str | None
    schedule_id: str | None = Field(
        default=None, description="The schedule whose fire made this job, if any."
    )
    scheduled_for: Timestamp | None = Field(
        default=None, description="That fire's time (the task reads it as ctx.scheduled_for)."
    )
    cached_from: str | None = Field(
        default=None, description="A cache hit: the job whose result this one reused."
    )
    callback_url: str | None = Field(default=None, description="Where the summary is POSTed.")

    @classmethod
    def from_job(cls, job: Job) -> "JobRead":
        return cls(
            id=job.id,
            task_name=job.task_name,
            status=JobStatus(job.status),
            params=job.params,
            parent_id=job.parent_id,
            root_id=job.root_id or job.id,
            map_index=job.map_index,
            priority=job.priority,
            created_at=job.created_at,
            run_at=job.run_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            error=None if job.error is None else JobError.model_validate(job.error),
            progress=job.progress,
            progress_message=job.progress_message,
            result=job.result_artifact_id,
            cancel_requested=job.cancel_requested_at is not None,
            timeout=job.timeout_seconds,
            idempotency_key=job.idempotency_key,
            schedule_id=job.schedule_id,
            scheduled_for=job.scheduled_for,
            cached_from=job.cached_from,
            callback_url=job.callback_url,
        )


class AttemptRead(BaseModel):
    """One attempt of a job."""

    model_config = ConfigDict(from_attributes=True)

    attempt: int
    status: JobStatus
    worker_id: str | None
    started_at: Timestamp | None
    finished_at: Timestamp
    error: JobError | None


class JobDetail(JobRead):
    """A job with the history of its attempts (oldest first)."""

    attempt_history: list[AttemptRead]


class JobEventRead(BaseModel):
    """One event of a job, numbered from 1 without gaps."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    type: str
    created_at: Timestamp
    data: dict[str, Any]


class JobLogRead(BaseModel):
    """One log line a task wrote while it ran."""

    seq: int
    created_at: Timestamp
    level: str
    logger: str
    message: str

    @classmethod
    def from_event(cls, event: JobEventRead) -> "JobLogRead":
        data = event.data
        if event.type == "log_truncated":
            return cls(
                seq=event.seq,
                created_at=event.created_at,
                level="WARNING",
                logger="taskexec",
                message=(
                    f"log truncated: {data.get('dropped')} more lines were not kept, "
                    f"{data.get('shortened', 0)} lines were shortened "
                    f"({data.get('dropped_bytes', 0)} bytes left out)"
                ),
            )
        return cls(
            seq=event.seq,
            created_at=event.created_at,
            level=str(data.get("level", "INFO")),
            logger=str(data.get("logger", "")),
            message=str(data.get("message", "")),
        )


class JobTreeNode(BaseModel):
    """One job of a flow and its children (spawn order; map items by index)."""

    id: str
    task_name: str
    status: JobStatus
    child_key: str | None
    map_index: int | None
    attempts: int
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    duration_seconds: float | None = Field(
        description="From the start of its last attempt to its end (null until it ends)."
    )
    result: str | None = Field(description="Id of the artifact that records the run.")
    error: JobError | None
    child_count: int = Field(description="Children it has (some may be cut off, see truncated).")
    children: list["JobTreeNode"]


class JobTree(BaseModel):
    """A job and all its descendants, nested; at most `TASKEXEC_TREE_MAX_NODES` nodes, taken
    level by level in creation order."""

    root: JobTreeNode
    node_count: int
    truncated: bool
