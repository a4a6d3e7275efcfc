"""Artifact schemas."""

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from app.core.clock import Timestamp
from app.core.tracebacks import redact_run_record


class ArtifactIn(BaseModel):
    """A JSON document to store."""

    data: JsonValue
    job_id: str | None = None


class ArtifactRead(BaseModel):
    """A stored artifact. A job's `result` artifact holds `{"task_name", "params", "result",
    "error"}`; other named artifacts hold what the task stored, shaped by their `kind`."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    job_id: str | None = Field(description="The job whose run this records, if any.")
    name: str | None = Field(
        default=None, description="Unique per job: `result` for the run's record."
    )
    kind: str = Field(default="json", description="json, text, markdown, table or link.")
    description: str | None = None
    parent_id: str | None = Field(default=None, description="The artifact this one nests under.")
    level: int = Field(default=0, description="Depth in the artifact hierarchy (0: a root).")
    data: JsonValue
    created_at: Timestamp


class ArtifactNode(BaseModel):
    """One artifact in a tree, without its data (read that at `/api/v1/artifacts/{id}`)."""

    id: str
    job_id: str | None
    name: str | None
    kind: str
    description: str | None
    level: int
    label: str | None = Field(description="The hierarchy's name for this level.")
    created_at: Timestamp
    children: list["ArtifactNode"]


class ArtifactTree(BaseModel):
    """An artifact and its descendants, level by level, bounded in depth and size."""

    hierarchy: str
    level_labels: list[str]
    root: ArtifactNode
    node_count: int
    truncated: bool = Field(description="True when depth or size bounds left nodes out.")


def shown(artifact: ArtifactRead, *, expose_paths: bool) -> ArtifactRead:
    """The artifact as callers see it: server file paths removed from a stored traceback."""
    if expose_paths or artifact.name not in (None, "result"):
        return artifact
    return artifact.model_copy(update={"data": redact_run_record(artifact.data)})
