"""Result caching: the cache key of a request and how the request uses the cache. Admitting
a request (a hit, a join or a new run, in one transaction with the job it creates) is a change
of job state, so the job store does it (`JobStore.admit`, app/jobs/store/cached.py).
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from pydantic_core import to_jsonable_python

from app.db.base import table_of
from app.jobs.cache_models import CacheEntry
from app.jobs.models import Job
from app.tasks.registry import TaskDefinition

logger = logging.getLogger(__name__)

CacheMode = Literal["use", "refresh", "bypass"]
ENTRIES = table_of(CacheEntry)


@dataclass(frozen=True)
class CachePlan:
    """How one request uses the cache: its key, mode and the task's TTL."""

    key: str
    mode: CacheMode
    ttl: float


@dataclass(frozen=True)
class Admission:
    """How a request was answered: `job` is the job the caller gets."""

    job: Job
    created: bool  # False: joined a job already pending or running
    outcome: Literal["hit", "miss", "joined", "uncached"]


def cache_key(definition: TaskDefinition, validated: dict[str, Any]) -> str:
    """sha256 of the task name, its `cache_version`, and canonical JSON of the validated params
    (or of what the task's `cache_key(params)` returns)."""
    options = definition.options
    if options.cache_key is not None:
        custom = options.cache_key(validated)
        if not isinstance(custom, str):
            raise TypeError(f"task {definition.name!r}: cache_key must return a str")
        part: Any = custom
    else:
        part = to_jsonable_python(validated)
    canonical = json.dumps(
        [definition.name, options.cache_version, part],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def plan_cache(
    definition: TaskDefinition, params: dict[str, Any], mode: CacheMode | None
) -> CachePlan | None:
    """The request's use of the cache; None for tasks without `cache_ttl` or `bypass`."""
    ttl = definition.options.cache_ttl
    if ttl is None or mode == "bypass":
        return None
    key = cache_key(definition, definition.validate_params(params))
    return CachePlan(key=key, mode=mode or "use", ttl=ttl)
