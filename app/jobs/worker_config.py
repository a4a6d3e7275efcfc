"""`WorkerConfig`: how a worker claims, runs and keeps its jobs."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.jobs.bounds import Bounds
from app.jobs.runner import ExecutorName


@dataclass
class WorkerConfig:
    concurrency: int
    poll_interval: float = 1.0
    lease_seconds: float = 30.0
    shutdown_grace: float = 10.0
    tag_limits: Mapping[str, int] = field(default_factory=dict)
    retention_seconds: float | None = None
    retention_batch: int = 500
    retention_interval: float = 60.0
    max_log_lines: int = 1000
    bounds: Bounds = field(default_factory=Bounds)
    sync_executor: ExecutorName = "thread"
    # Flows: children per parent, and parents that may wait in memory at once (then parked).
    max_children: int = 10_000
    max_waiting_parents: int = 1000
    # A worker whose heartbeat row is older than this is dead (None: the lease).
    worker_timeout: float | None = None

    @property
    def heartbeat_seconds(self) -> float:
        """Three heartbeats fit in both the lease and the worker timeout."""
        return min(self.lease_seconds, self.worker_timeout or self.lease_seconds) / 3
