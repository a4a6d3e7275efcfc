"""What the API answers, as small immutable values. Each keeps the full JSON as `raw`."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TERMINAL_STATUSES = frozenset({"completed", "failed", "canceled"})
TERMINAL_EVENTS = TERMINAL_STATUSES
LOG_EVENTS = frozenset({"log", "log_truncated"})


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class JobError:
    """Why a job failed or was canceled: the exception type and message."""

    type: str
    message: str


@dataclass(frozen=True)
class Job:
    """A job: one run of a task, with its state and the id of its result artifact."""

    id: str
    task_name: str
    status: str
    params: dict[str, Any]
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    error: JobError | None
    progress: float | None
    progress_message: str | None
    result: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Job":
        error = data.get("error")
        return cls(
            id=str(data["id"]),
            task_name=str(data["task_name"]),
            status=str(data["status"]),
            params=_dict(data.get("params")),
            created_at=_time(data.get("created_at")),
            started_at=_time(data.get("started_at")),
            finished_at=_time(data.get("finished_at")),
            attempts=int(data.get("attempts") or 0),
            error=(
                JobError(str(error.get("type", "")), str(error.get("message", "")))
                if isinstance(error, dict)
                else None
            ),
            progress=_float(data.get("progress")),
            progress_message=data.get("progress_message"),
            result=data.get("result"),
            raw=data,
        )


@dataclass(frozen=True)
class Parameter:
    """One request parameter of a task."""

    name: str
    annotation: str | None
    default: str | None
    required: bool


@dataclass(frozen=True)
class TaskInfo:
    """A registered task: its docs, parameters (and their JSON Schema) and tags."""

    name: str
    docstring: str | None
    signature: str
    parameters: list[Parameter]
    tags: list[str]
    parameters_schema: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TaskInfo":
        return cls(
            name=str(data["name"]),
            docstring=data.get("docstring"),
            signature=str(data.get("signature", "")),
            parameters=[
                Parameter(
                    name=str(p["name"]),
                    annotation=p.get("annotation"),
                    default=p.get("default"),
                    required=bool(p.get("required")),
                )
                for p in data.get("parameters", [])
            ],
            tags=[str(tag) for tag in data.get("tags", [])],
            parameters_schema=_dict(data.get("parameters_schema")),
            raw=data,
        )


@dataclass(frozen=True)
class JobEvent:
    """One event of a job, numbered from 1 without gaps (`seq` is the SSE id)."""

    seq: int
    type: str
    created_at: datetime | None
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "JobEvent":
        return cls(
            seq=int(data["seq"]),
            type=str(data["type"]),
            created_at=_time(data.get("created_at")),
            data=_dict(data.get("data")),
        )


@dataclass(frozen=True)
class LogLine:
    """One line a task logged while it ran."""

    seq: int
    created_at: datetime | None
    level: str
    logger: str
    message: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LogLine":
        return cls(
            seq=int(data["seq"]),
            created_at=_time(data.get("created_at")),
            level=str(data.get("level", "INFO")),
            logger=str(data.get("logger", "")),
            message=str(data.get("message", "")),
        )

    @classmethod
    def from_event(cls, event: JobEvent) -> "LogLine":
        """The line of a `log` event; a `log_truncated` event as the server's logs route shows
        it (a WARNING from `taskexec`)."""
        if event.type == "log_truncated":
            dropped = event.data.get("dropped")
            return cls(
                event.seq,
                event.created_at,
                "WARNING",
                "taskexec",
                f"log truncated: {dropped} more lines were not kept",
            )
        return cls(
            event.seq,
            event.created_at,
            str(event.data.get("level", "INFO")),
            str(event.data.get("logger", "")),
            str(event.data.get("message", "")),
        )


@dataclass(frozen=True)
class Artifact:
    """A stored artifact. A job's result artifact has `data` =
    `{"task_name", "params", "result", "error"}`."""

    id: str
    job_id: str | None
    data: Any
    created_at: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Artifact":
        return cls(
            id=str(data["id"]),
            job_id=data.get("job_id"),
            data=data.get("data"),
            created_at=_time(data.get("created_at")),
        )


@dataclass(frozen=True)
class JobPage:
    """One page of the job list, newest first."""

    items: list[Job]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class BatchItem:
    """One item of `submit_many`: params plus options for that job only."""

    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
