"""New jobs as rows: a task's params validated and its options filled, nothing written.

The request path builds plain column dicts (no ORM objects) that the job store inserts with
one `executemany` per transaction; `JobScheduler.build_job` wraps the same row in a `Job` for
the paths that need one (flows, the result cache, callbacks).
"""

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any, TypedDict

from app.core.clock import new_id
from app.core.logging import context_value
from app.jobs.cache import CacheMode
from app.jobs.store.queueing import JobRow, new_job_row
from app.tasks.registry import TaskDefinition

PENDING = "pending"


class SubmitOptions(TypedDict, total=False):
    """Per-job overrides of a task's registered options."""

    priority: int | None
    delay: float | None
    run_at: datetime | None
    timeout: float | None
    retries: int | None
    idempotency_key: str | None
    cache: CacheMode | None
    callback_url: str | None


def pending_row(
    definition: TaskDefinition,
    params: dict[str, Any],
    options: SubmitOptions,
    *,
    now: datetime,
    request_id: str | None,
    max_worker_losses: int,
    fingerprint: bool = True,
) -> JobRow:
    """Validate `params` (`ValidationFailedError`) and build the pending job's row, options
    left out (or None) taken from the task's registration. The request's fingerprint is
    stored when `fingerprint` is set or the job has an idempotency key (which it guards)."""
    definition.validate_params(params)
    key = options.get("idempotency_key")
    defaults = definition.options
    priority, retries = options.get("priority"), options.get("retries")
    timeout, run_at = options.get("timeout"), options.get("run_at")
    task_name = definition.name
    return new_job_row(
        id=new_id(),
        task_name=task_name,
        status=PENDING,
        params=params,
        priority=defaults.priority if priority is None else priority,
        run_at=run_at or now + timedelta(seconds=options.get("delay") or 0.0),
        created_at=now,
        attempts=0,
        max_attempts=(defaults.retries if retries is None else retries) + 1,
        timeout_seconds=defaults.timeout if timeout is None else timeout,
        idempotency_key=key,
        request_hash=request_hash(task_name, params) if fingerprint or key else None,
        worker_losses=0,
        max_worker_losses=(
            max_worker_losses if defaults.max_worker_losses is None else defaults.max_worker_losses
        ),
        # A job queued by a running task inherits the request id of that task's job.
        request_id=request_id or context_value("request_id"),
    )


def request_hash(task_name: str, params: dict[str, Any]) -> str:
    """Fingerprint of task name and params: tells a replay from a conflicting key reuse."""
    canonical = json.dumps([task_name, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def uses_cache_or_callback(definition: TaskDefinition, options: SubmitOptions) -> bool:
    """Whether the request goes through the result cache or the callback outbox."""
    caching = definition.options.cache_ttl is not None and options.get("cache") != "bypass"
    return caching or options.get("callback_url") is not None
