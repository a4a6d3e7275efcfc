"""Task metadata as the API shows it."""

from typing import Any

from pydantic import BaseModel, Field


class ParameterInfo(BaseModel):
    """One request parameter of a task."""

    name: str
    annotation: str | None = Field(description="The type annotation, as written.")
    default: str | None = Field(description="repr() of the default, or null when required.")
    required: bool


class TaskOptionsRead(BaseModel):
    """Execution options a task was registered with."""

    retries: int
    retry_backoff: float
    retry_backoff_max: float
    retry_on: list[str]
    timeout: float | None
    max_concurrency: int | None
    priority: int
    description: str | None


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
    """Body of `$execute`. Optional: an empty or missing body means no params."""

    params: dict[str, Any] = Field(default_factory=dict, examples=[{"name": "Alice"}])


class ExecuteAccepted(BaseModel):
    """A job was queued."""

    job_id: str
    message: str
