"""Health and service information."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.core.deps import DatabaseDep, SettingsDep
from app.core.errors import ServiceUnavailableError
from app.service.schemas import HealthRead, InfoRead, ServiceInfo
from app.tasks.registry import TaskRegistry

health_router = APIRouter(tags=["Service"])
info_router = APIRouter(prefix="/api/v1", tags=["Service"])


@health_router.get("/health", response_model=HealthRead)
async def get_health() -> HealthRead:
    """Liveness: the process answers."""
    return HealthRead(status="ok")


@health_router.get(
    "/health/ready",
    response_model=HealthRead,
    responses={503: {"description": "Database unreachable or worker not running."}},
)
async def get_readiness(request: Request, database: DatabaseDep) -> HealthRead | JSONResponse:
    """Readiness: the database answers and, when this process runs a worker, it is alive."""
    checks: dict[str, str] = {}
    try:
        await database.ping()
        checks["database"] = "ok"
    except Exception as exc:
        raise ServiceUnavailableError(f"database unreachable: {type(exc).__name__}") from exc
    worker = getattr(request.app.state, "worker", None)
    if worker is not None:
        if not worker.is_alive:
            raise ServiceUnavailableError("the worker is not running")
        checks["worker"] = "ok"
    return HealthRead(status="ok", checks=checks)


@info_router.get("/info", response_model=InfoRead)
async def get_info(request: Request, settings: SettingsDep, database: DatabaseDep) -> InfoRead:
    """What this service is and how it is configured (no secrets)."""
    info: ServiceInfo = request.app.state.service_info
    return InfoRead(
        display_name=info.display_name,
        version=info.version,
        description=info.description,
        database=database.url.get_backend_name(),
        max_concurrency=request.app.state.scheduler.max_concurrency
        if getattr(request.app.state, "scheduler", None)
        else settings.max_concurrency,
        worker=getattr(request.app.state, "worker", None) is not None,
        tasks=len(TaskRegistry.list_all()),
    )
