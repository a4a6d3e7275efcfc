"""Worker schemas as the API shows them."""

from datetime import datetime
from typing import Literal, cast

from pydantic import BaseModel, Field

from app.core.clock import Timestamp
from app.workers.models import WorkerRecord


class WorkerRead(BaseModel):
    """A worker process, as its heartbeat row says."""

    id: str = Field(description="The id the worker writes into the jobs it runs.")
    host: str
    pid: int
    tasks: list[str] = Field(description="The tasks it claims.")
    started_at: Timestamp
    last_seen_at: Timestamp = Field(description="Its last heartbeat.")
    running: int = Field(description="Jobs it held at its last heartbeat.")
    stopped_at: Timestamp | None = Field(
        description="When it stopped, or was found dead (`stop_reason`); null while it runs."
    )
    stop_reason: Literal["stopped", "expired"] | None = Field(
        description="`stopped`: a clean stop. `expired`: it stopped beating for the worker "
        "timeout, and its jobs were recovered."
    )
    alive: bool = Field(
        description="Not stopped, and seen within the worker timeout "
        "(`TASKEXEC_WORKER_TIMEOUT_SECONDS`)."
    )

    @classmethod
    def from_record(cls, record: WorkerRecord, cutoff: datetime) -> "WorkerRead":
        return cls(
            id=record.id,
            host=record.host,
            pid=record.pid,
            tasks=record.tasks,
            started_at=record.started_at,
            last_seen_at=record.last_seen_at,
            running=record.running,
            stopped_at=record.stopped_at,
            stop_reason=cast(Literal["stopped", "expired"] | None, record.stop_reason),
            alive=record.stopped_at is None and record.last_seen_at >= cutoff,
        )
