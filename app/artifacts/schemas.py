"""Artifact schemas."""

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.core.clock import Timestamp


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
