"""Artifact schemas."""

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.core.clock import Timestamp
from app.core.tracebacks import redact_run_record


class ArtifactIn(BaseModel):
    """A JSON document to store."""

    data: JsonValue
    job_id: str | None = None


class ArtifactRead(BaseModel):
    """A stored artifact. For a job run, `data` is `{"task_name", "params", "result", "error"}`."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    job_id: str | None = Field(description="The job whose run this records, if any.")
    data: JsonValue
    created_at: Timestamp


def shown(artifact: ArtifactRead, *, expose_paths: bool) -> ArtifactRead:
    """The artifact as callers see it: server file paths removed from a stored traceback."""
    if expose_paths:
        return artifact
    return artifact.model_copy(update={"data": redact_run_record(artifact.data)})
