"""`ServiceBuilder`: compose a taskexec FastAPI app feature by feature."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Self

from fastapi import APIRouter, Depends, FastAPI
from fastapi.telemetry import TelemetryConfig

from app.artifacts.hierarchy import DEFAULT_HIERARCHY, ArtifactHierarchy
from app.artifacts.router import job_artifacts_router
from app.artifacts.router import router as artifacts_router
from app.core.auth import UNAUTHORIZED_RESPONSES, api_key_dependency
from app.core.body_limit import BodyLimitMiddleware
from app.core.errors import install_error_handlers
from app.core.metrics import HttpMetricsMiddleware, Metrics
from app.core.request_id import RequestIdMiddleware
from app.core.settings import Settings
from app.db.migrate import upgrade_async
from app.jobs.hooks import check_hooks
from app.jobs.router import router as jobs_router
from app.runtime import start_runtime
from app.schedules.router import router as schedules_router
from app.service.docs import install_offline_docs
from app.service.metrics_router import router as metrics_router
from app.service.openapi import install_problem_openapi, install_task_openapi
from app.service.router import health_router, info_router
from app.service.schemas import ServiceInfo
from app.tasks.router import router as tasks_router
from app.workers.router import router as workers_router

logger = logging.getLogger(__name__)

# FastAPI's native OpenTelemetry, off: otherwise it asks for the global providers per request.
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class ServiceBuilder:
    """Chainable builder for a taskexec service.

    ```python
    app = (
        ServiceBuilder(info=ServiceInfo(display_name="Task Service"))
        .with_health()
        .with_jobs(max_concurrency=5)
        .with_tasks()
        .build()
    )
    ```
    `with_tasks()` implies jobs and artifacts. Settings not given here come from `TASKEXEC_*`
    environment variables.
    """

    def __init__(self, info: ServiceInfo, settings: Settings | None = None) -> None:
        self.info = info
        self.settings = settings or Settings()
        self._health = False
        self._jobs = False
        self._artifacts = False
        self._tasks = False
        self._monitoring = False
        self._ui = False
        self._api_keys: list[str] = []
        self._routers: list[tuple[APIRouter, dict[str, Any]]] = []
        self._overrides: dict[str, Any] = {}
        self._hierarchy = DEFAULT_HIERARCHY
        self._hooks: object | None = None

    def with_health(self) -> Self:
        self._health = True
        return self

    def with_database(self, url: str, *, auto_migrate: bool | None = None) -> Self:
        self._overrides["database_url"] = url
        if auto_migrate is not None:
            self._overrides["auto_migrate"] = auto_migrate
        return self

    def with_jobs(
        self, max_concurrency: int | None = None, *, run_worker: bool | None = None
    ) -> Self:
        self._jobs = True
        if max_concurrency is not None:
            self._overrides["max_concurrency"] = max_concurrency
        if run_worker is not None:
            self._overrides["run_worker"] = run_worker
        return self

    def with_artifacts(self, *, hierarchy: ArtifactHierarchy | None = None) -> Self:
        """Artifact routes; `hierarchy` labels the levels of nested artifacts."""
        self._artifacts = True
        if hierarchy is not None:
            self._hierarchy = hierarchy
        return self

    def with_hooks(self, hooks: object) -> Self:
        """Call `hooks.on_job_started` / `on_job_finished` / `on_job_retrying` /
        `on_cache_hit` (async, each optional) after job changes this process makes."""
        check_hooks(hooks)
        self._hooks = hooks
        return self

    def with_tasks(self) -> Self:
        self._tasks = self._jobs = self._artifacts = True
        return self

    def with_monitoring(self) -> Self:
        """`GET /metrics` (Prometheus) and HTTP request metrics."""
        self._monitoring = True
        return self

    def with_ui(self) -> Self:
        """The dashboard at `/ui` (implies tasks); `TASKEXEC_UI=false` leaves it out."""
        self._ui = True
        return self.with_tasks()

    def with_auth(self, api_keys: list[str]) -> Self:
        """Require one of `api_keys` on every `/api/v1` route (health and docs stay open)."""
        if not api_keys or any(not key for key in api_keys):
            raise ValueError("with_auth needs at least one non-empty API key")
        self._api_keys = list(api_keys)
        return self

    def include_router(self, router: APIRouter, **kwargs: Any) -> Self:
        self._routers.append((router, kwargs))
        return self

    def build(self) -> FastAPI:
        settings = self.settings.model_copy(update=self._overrides)
        app = FastAPI(
            title=self.info.display_name,
            version=self.info.version,
            description=self.info.description or "",
            lifespan=self._lifespan(settings),
            docs_url=None,
            redoc_url=None,
            # Handlers are named verb_noun; they are the OpenAPI operation ids.
            generate_unique_id_function=lambda route: route.name,
            responses={400: {"description": "Invalid request (problem+json)."}},
            telemetry=None if settings.opentelemetry else _NO_TELEMETRY,
        )
        app.state.settings = settings
        app.state.service_info = self.info
        app.state.artifact_hierarchy = self._hierarchy
        metrics = Metrics()
        app.state.metrics = metrics
        install_error_handlers(app)
        install_offline_docs(app)
        install_problem_openapi(app)
        if self._tasks:
            install_task_openapi(app)
        app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
        if self._monitoring:
            app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
            app.include_router(metrics_router)
        app.add_middleware(RequestIdMiddleware)
        api_keys = self._api_keys or settings.api_keys
        guard = [Depends(api_key_dependency(api_keys))] if api_keys else []
        guarded: dict[str, Any] = {"dependencies": guard}
        if api_keys:
            guarded["responses"] = UNAUTHORIZED_RESPONSES
        if self._health:
            app.include_router(health_router)
        app.include_router(info_router, **guarded)
        if self._tasks:
            app.include_router(tasks_router, **guarded)
        if self._jobs:
            app.include_router(jobs_router, **guarded)
        if self._artifacts:
            app.include_router(artifacts_router, **guarded)
            app.include_router(job_artifacts_router, **guarded)
        if self._jobs:
            app.include_router(schedules_router, **guarded)
            app.include_router(workers_router, **guarded)
        for router, kwargs in self._routers:
            app.include_router(router, **kwargs)
        if self._ui and settings.ui:
            # Imported here: templates and form parsing cost `import app` nothing (worker and
            # process-executor children import it too). After the caller's routers, so a
            # route of theirs at `/` wins over the redirect.
            from app.ui.install import install_ui

            install_ui(app, settings, api_keys)
        return app

    def _lifespan(self, settings: Settings) -> Any:
        jobs_enabled = self._jobs
        hierarchy, hooks = self._hierarchy, self._hooks

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            if settings.auto_migrate:
                await upgrade_async(settings.database_url)
            runtime = await start_runtime(
                settings,
                run_worker=jobs_enabled and settings.run_worker,
                metrics=app.state.metrics,
                hierarchy=hierarchy,
                hooks=hooks,
            )
            app.state.database = runtime.database
            app.state.artifact_manager = runtime.artifacts
            app.state.scheduler = runtime.scheduler
            app.state.worker = runtime.worker
            app.state.schedules = runtime.schedules and runtime.schedules.manager
            try:
                yield
            finally:
                await runtime.close()

        return lifespan
