"""`ResultsFeed`: what the scheduler and the worker tell the results features after a change
committed: cache counters, hooks, and which callback URLs are accepted."""

from collections.abc import Iterable

from app.core.metrics import Metrics
from app.jobs.cache import Admission
from app.jobs.callbacks import check_callback_url
from app.jobs.hooks import HookDispatcher


class ResultsFeed:
    """Non-blocking notifications after commits; configured by the runtime."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self.hooks: HookDispatcher | None = None
        self.callback_hosts: list[str] = []

    def accept_callback_url(self, url: str | None) -> str | None:
        """`BadRequestError` unless callbacks to `url` are allowed."""
        return check_callback_url(url, self.callback_hosts)

    def admitted(self, admission: Admission) -> None:
        """A request went through the cache (or the callback outbox) and committed."""
        task = admission.job.task_name
        if self.metrics is not None and admission.outcome != "uncached":
            counter = {
                "hit": self.metrics.cache_hits,
                "miss": self.metrics.cache_misses,
                "joined": self.metrics.cache_joins,
            }[admission.outcome]
            counter.labels(task).inc()
        # The store publishes the new job and counts a hit as finished (after its commit).
        if admission.outcome == "hit" and self.hooks is not None:
            self.hooks.cache_hit(admission.job.id)
            self.hooks.job_finished(admission.job.id)

    def jobs_started(self, job_ids: Iterable[str]) -> None:
        if self.hooks is not None:
            self.hooks.jobs_started(job_ids)

    def attempt_recorded(self, job_id: str, *, retrying: bool) -> None:
        if self.hooks is not None:
            self.hooks.attempt_recorded(job_id, retrying=retrying)

    def job_finished(self, job_id: str) -> None:
        if self.hooks is not None:
            self.hooks.job_finished(job_id)
