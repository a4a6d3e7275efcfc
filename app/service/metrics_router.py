"""`GET /metrics` in the Prometheus text format."""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.core.deps import DatabaseDep
from app.core.metrics import Metrics

router = APIRouter(tags=["Service"])


@router.get("/metrics", response_class=Response)
async def get_metrics(request: Request, database: DatabaseDep) -> Response:
    """Prometheus metrics: jobs submitted and finished, run durations, queue depth (also per
    task, and of tasks this process lacks) and age of the oldest pending job, running jobs,
    HTTP requests, live workers."""
    metrics: Metrics = request.app.state.metrics
    scheduler = getattr(request.app.state, "scheduler", None)
    registered = None if scheduler is None else scheduler.registry.names()
    await metrics.refresh_queue(database, registered)
    await metrics.refresh_workers(database, request.app.state.settings.worker_timeout)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
