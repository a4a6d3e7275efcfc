"""Prometheus metrics. Counters and histograms count what this process did; the queue gauges
are read from the database at scrape time, so every process reports the same queue."""

import time
from collections.abc import Collection
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.clock import utcnow
from app.db.database import Database
from app.jobs.models import ACTIVE_STATUSES, Job, JobStatus
from app.workers.repository import WorkerRepository

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class Metrics:
    """The metric families of one process, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_submitted = Counter(
            "taskexec_jobs_submitted", "Jobs queued by this process.", ["task"], registry=r
        )
        self.jobs_finished = Counter(
            "taskexec_jobs_finished",
            "Jobs that ended in this process, by final status.",
            ["task", "status"],
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "taskexec_job_run_duration_seconds",
            "Run time of each attempt (whatever its outcome).",
            ["task"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.cache_hits = Counter(
            "taskexec_cache_hits", "Requests answered from the result cache.", ["task"], registry=r
        )
        self.cache_misses = Counter(
            "taskexec_cache_misses",
            "Requests of caching tasks that ran the task (no fresh result, or `refresh`).",
            ["task"],
            registry=r,
        )
        self.cache_joins = Counter(
            "taskexec_cache_joins",
            "Requests that joined an identical job already pending or running.",
            ["task"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "taskexec_queue_depth", "Pending jobs (all processes).", registry=r
        )
        self.oldest_pending = Gauge(
            "taskexec_oldest_pending_age_seconds",
            "Age of the oldest pending job that is due (0 if none).",
            registry=r,
        )
        self.pending_by_task = Gauge(
            "taskexec_jobs_pending",
            "Pending jobs per task (all processes).",
            ["task"],
            registry=r,
        )
        self.pending_unregistered = Gauge(
            "taskexec_jobs_pending_unregistered",
            "Pending jobs of tasks this process has not registered (e.g. during a rolling "
            "deploy); only a worker that has the task claims them.",
            registry=r,
        )
        self.running = Gauge(
            "taskexec_jobs_running", "Jobs running or canceling (all processes).", registry=r
        )
        self.workers_alive = Gauge(
            "taskexec_workers_alive",
            "Workers not stopped and seen within the worker timeout (all processes).",
            registry=r,
        )
        self.http_requests = Counter(
            "taskexec_http_requests",
            "HTTP requests, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "taskexec_http_request_duration_seconds",
            "HTTP request duration.",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        # Schedules: what this process's firing loop (and `$trigger`) did.
        self.schedule_fires = Counter(
            "taskexec_schedule_fires",
            "Schedule fires queued as jobs by this process.",
            ["schedule", "task"],
            registry=r,
        )
        self.schedule_missed_fires = Counter(
            "taskexec_schedule_missed_fires",
            "Fire times given up by this process, by reason (catchup, overlap, invalid_params).",
            ["schedule", "task", "reason"],
            registry=r,
        )

    async def refresh_queue(
        self, database: Database, registered: Collection[str] | None = None
    ) -> None:
        """Read the queue gauges from the database (one short query each). `registered`: the
        task names this process has, to count pending jobs of the others."""
        now = utcnow()
        async with database.read_session() as session:
            rows = await session.execute(
                select(Job.task_name, func.count())
                .where(Job.status == JobStatus.PENDING)
                .group_by(Job.task_name)
            )
            per_task: dict[str, int] = {task_name: count for task_name, count in rows}
            oldest = await session.scalar(
                select(func.min(Job.run_at)).where(
                    Job.status == JobStatus.PENDING, Job.run_at <= now
                )
            )
            running = await session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.status.in_([s.value for s in ACTIVE_STATUSES]))
            )
        self.queue_depth.set(sum(per_task.values()))
        self.pending_by_task.clear()
        for task_name, count in per_task.items():
            self.pending_by_task.labels(task_name).set(count)
        if registered is not None:
            known = set(registered)
            unknown = sum(n for name, n in per_task.items() if name not in known)
            self.pending_unregistered.set(unknown)
        self.oldest_pending.set((now - oldest).total_seconds() if oldest is not None else 0)
        self.running.set(running or 0)

    async def refresh_workers(self, database: Database, worker_timeout: float) -> None:
        """Read the live-worker gauge from the workers table (one short query)."""
        cutoff = utcnow() - timedelta(seconds=worker_timeout)
        async with database.read_session() as session:
            self.workers_alive.set(await WorkerRepository(session).count_alive(cutoff))


class HttpMetricsMiddleware:
    """Counts requests and their duration by route template (never by raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # The labelled children, found once (as many as the metrics' own label sets).
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._histograms: dict[tuple[str, str], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self._counter(method, route, status).inc()
            self._histogram(method, route).observe(time.perf_counter() - started)

    def _counter(self, method: str, route: str, status: int) -> Counter:
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.metrics.http_requests.labels(
                method, route, str(status)
            )
        return counter

    def _histogram(self, method: str, route: str) -> Histogram:
        key = (method, route)
        histogram = self._histograms.get(key)
        if histogram is None:
            histogram = self._histograms[key] = self.metrics.http_seconds.labels(method, route)
        return histogram
